"""TeX formulas to MathML, which browsers render natively: no script, no inline style."""

from xml.etree import ElementTree

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
MATHML_TAGS = frozenset(
    "math semantics annotation mrow mi mn mo ms mtext mspace msub msup msubsup mfrac msqrt "
    "mroot mover munder munderover mtable mtr mtd mlabeledtr mstyle mpadded mphantom menclose "
    "merror mmultiscripts mprescripts none".split()
)


def render_formula(tex: str) -> str:
    """TeX to MathML; raise (ValueError, or the converter's own errors) on bad TeX.

    The converter passes some text through verbatim (e.g. inside \\text{}), so its output is
    parsed and re-serialized, and anything that is not plain MathML is refused.
    """
    from latex2mathml.converter import convert

    root = ElementTree.fromstring(str(convert(tex, display="block")))  # noqa: S314
    for element in root.iter():
        namespace, _, tag = element.tag.rpartition("}")
        if namespace.lstrip("{") != MATHML_NS or tag not in MATHML_TAGS:
            raise ValueError(f"<{tag}> is not MathML")
        for attr in list(element.attrib):
            if attr.startswith("on") or attr in ("style", "href") or ":" in attr:
                raise ValueError(f"attribute {attr!r} is not allowed in a formula")
    ElementTree.register_namespace("", MATHML_NS)
    return ElementTree.tostring(root, encoding="unicode")
