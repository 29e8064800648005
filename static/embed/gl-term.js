// <gl-term slug="residual-connection">skip connections</gl-term>: a link to a Glossary Lab
// entry that previews it on hover, keyboard focus or a first tap, on any site. One ES module,
// no imports, loaded from the glossary:
//   <script type="module" src="https://glossary.example/embed/gl-term.js"
//           integrity="sha384-..." crossorigin="anonymous"></script>
// It fits a host page whose Content-Security-Policy allows only the glossary's origin for
// script-src, connect-src and img-src, with nothing inline: the card lives in a shadow root
// styled through a constructable stylesheet (adoptedStyleSheets), positions are set through
// the CSSOM, remote text only ever goes in through textContent (extract_html is never used),
// and fetches carry no credentials. Our own pages reuse PreviewController (static/js/preview.js).

// Wikipedia's page-preview timings: fetch after a short dwell, show later, close on a grace.
export const FETCH_AFTER_MS = 150;
export const SHOW_AFTER_MS = 500;
export const CLOSE_AFTER_MS = 300;
const MARGIN_PX = 8;

const GLOSSARY_ORIGIN = new URL(import.meta.url).origin;
const summaries = new Map(); // summary URL -> Promise of the JSON (or null on failure)
let counter = 0;

export function summaryUrl(origin, slug) {
  return `${origin}/api/terms/${encodeURIComponent(slug)}/summary`;
}

/** The summary at `url`, fetched once per page; a failure is forgotten, so it may retry. */
export function fetchSummary(url) {
  let pending = summaries.get(url);
  if (!pending) {
    pending = fetch(url, { credentials: "omit", mode: "cors" })
      .then((response) => (response.ok ? response.json() : null))
      .catch(() => null)
      .then((data) => {
        if (!data) { summaries.delete(url); }
        return data;
      });
    summaries.set(url, pending);
  }
  return pending;
}

function element(doc, tag, className, text) {
  const node = doc.createElement(tag);
  node.className = className;
  if (text !== undefined) { node.textContent = text; }
  return node;
}

function isFrom(url, origin) {
  try {
    return typeof url === "string" && new URL(url).origin === origin;
  } catch {
    return false;
  }
}

/** An empty, closed preview card (class names shared by site.css and STYLES below). */
export function createCard(doc) {
  counter += 1;
  const card = element(doc, "div", "gl-preview");
  card.id = `gl-preview-${counter}`;
  card.setAttribute("role", "tooltip");
  card.hidden = true;
  return card;
}

/** Fill `card` with `summary`: text through textContent only, the thumbnail only from `origin`. */
export function renderCard(card, summary, { origin, touch }) {
  const doc = card.ownerDocument;
  card.replaceChildren();
  const thumb = summary.thumbnail;
  if (thumb && isFrom(thumb.source, origin)) {
    const img = element(doc, "img", "gl-preview__thumb");
    img.alt = "";
    img.src = thumb.source;
    img.width = Number(thumb.width) || 320;
    img.height = Number(thumb.height) || 200;
    card.append(img);
  }
  card.append(element(doc, "p", "gl-preview__title", String(summary.title || "")));
  if (summary.description) {
    card.append(element(doc, "p", "gl-preview__description", String(summary.description)));
  }
  card.append(element(doc, "p", "gl-preview__extract", String(summary.extract || "")));
  const synonyms = Array.isArray(summary.synonyms) ? summary.synonyms.map(String) : [];
  if (synonyms.length) {
    card.append(element(doc, "p", "gl-preview__synonyms", `Also: ${synonyms.join(", ")}`));
  }
  const page = summary.content_urls && summary.content_urls.desktop && summary.content_urls.desktop.page;
  if (touch && isFrom(page, origin)) {
    const open = element(doc, "a", "gl-preview__open", `Open “${summary.title}”`);
    open.href = page;
    card.append(open);
  }
}

/** Place the (shown) fixed card under the link, or above it when there is no room below, and
 * always inside the viewport (phones). CSSOM writes: the CSP allows them, unlike style="". */
function place(card, link) {
  const box = link.getBoundingClientRect();
  const view = card.ownerDocument.documentElement;
  const width = card.offsetWidth;
  const height = card.offsetHeight;
  const left = Math.max(MARGIN_PX, Math.min(box.left, view.clientWidth - width - MARGIN_PX));
  let top = box.bottom + MARGIN_PX;
  if (top + height > view.clientHeight - MARGIN_PX && box.top - height - MARGIN_PX >= 0) {
    top = box.top - height - MARGIN_PX;
  }
  top = Math.max(MARGIN_PX, Math.min(top, view.clientHeight - height - MARGIN_PX));
  card.style.setProperty("left", `${Math.round(left)}px`);
  card.style.setProperty("top", `${Math.round(top)}px`);
}

/**
 * The timings and states of one card shared by any number of links: enter(link, slug) on
 * hover or focus, leave() when the pointer leaves the link or the card (or focus goes),
 * stay() when it enters the card, tap(link, slug) on a touch, escape().
 * options: { origin, summaryUrl(slug), onShow(card) }.
 */
export class PreviewController {
  constructor(card, options) {
    this.card = card;
    this.options = options;
    this.link = null; // the link the card is (to be) about
    this.shown = false;
    this.timers = [];
    this.closeTimer = 0;
    this.quietLink = null; // focus returned by Escape must not reopen the card
    this.doc = card.ownerDocument;
    // The card follows its link; once the link has scrolled out of view it closes (the
    // pointer may not have moved, so no pointerout would ever come).
    this.onScroll = () => {
      if (!this.shown || !this.link) { return; }
      const rect = this.link.getBoundingClientRect();
      if (rect.bottom < 0 || rect.top > this.doc.defaultView.innerHeight) { this.close(); return; }
      place(this.card, this.link);
    };
    this.onKey = (event) => {
      if (event.key === "Escape" && this.escape()) { event.preventDefault(); }
    };
    this.onPointerDown = (event) => {
      const path = event.composedPath();
      if (!path.includes(this.card) && !path.includes(this.link)) { this.close(); }
    };
  }

  enter(link, slug) {
    this.stay();
    if (this.link === link) { return; }
    if (this.quietLink === link) { this.quietLink = null; return; }
    this.open(link);
    const url = this.options.summaryUrl(slug);
    this.timers = [
      setTimeout(() => fetchSummary(url), FETCH_AFTER_MS),
      setTimeout(() => fetchSummary(url).then((data) => this.show(link, data, false)), SHOW_AFTER_MS),
    ];
  }

  /** A first tap opens the card at once (with a link to the page); a second tap navigates. */
  tap(event, link, slug) {
    if (this.shown && this.link === link) { return; }
    event.preventDefault();
    this.open(link);
    fetchSummary(this.options.summaryUrl(slug)).then((data) => this.show(link, data, true));
  }

  /** Start on `link`: whatever was open closes; Escape and a tap elsewhere now close. */
  open(link) {
    this.close();
    this.link = link;
    this.doc.addEventListener("keydown", this.onKey, true);
    this.doc.addEventListener("pointerdown", this.onPointerDown, true);
  }

  stay() {
    clearTimeout(this.closeTimer);
    this.closeTimer = 0;
  }

  leave() {
    if (!this.link) { return; }
    if (!this.shown) { this.close(); return; }
    clearTimeout(this.closeTimer);
    this.closeTimer = setTimeout(() => this.close(), CLOSE_AFTER_MS);
  }

  escape() {
    const link = this.link;
    if (!link) { return false; }
    // Focus inside the card goes back to the link, which must not reopen the card for it.
    const focusInCard = this.card.contains(this.card.getRootNode().activeElement);
    this.close();
    if (focusInCard) {
      this.quietLink = link;
      link.focus();
    }
    return true;
  }

  show(link, data, touch) {
    if (this.link !== link || !data) { return; }
    renderCard(this.card, data, { origin: this.options.origin, touch });
    if (this.options.onShow) { this.options.onShow(this.card); }
    this.card.hidden = false;
    place(this.card, link);
    this.shown = true;
    link.setAttribute("aria-describedby", this.card.id);
    window.addEventListener("scroll", this.onScroll, { passive: true });
    window.addEventListener("resize", this.onScroll, { passive: true });
  }

  close() {
    this.timers.forEach(clearTimeout);
    this.timers = [];
    this.stay();
    if (this.link && this.link.getAttribute("aria-describedby") === this.card.id) {
      this.link.removeAttribute("aria-describedby");
    }
    this.link = null;
    this.shown = false;
    this.card.hidden = true;
    this.doc.removeEventListener("keydown", this.onKey, true);
    this.doc.removeEventListener("pointerdown", this.onPointerDown, true);
    window.removeEventListener("scroll", this.onScroll);
    window.removeEventListener("resize", this.onScroll);
  }
}

/** Which pointer last went down (a touch's click opens the card instead of navigating). */
export function trackPointerType(target) {
  const state = { type: "mouse" };
  target.addEventListener("pointerdown", (event) => { state.type = event.pointerType; }, true);
  return state;
}

const STYLES = `
:host { display: inline; }
a.gl-term { color: inherit; text-decoration-line: underline; text-decoration-style: dotted;
  text-underline-offset: 0.15em; cursor: help; }
a.gl-term:focus-visible { outline: 2px solid currentColor; outline-offset: 2px; border-radius: 2px; }
.gl-preview { --gl-bg: #ffffff; --gl-text: #1f2328; --gl-muted: #57606a; --gl-border: #d8dee4;
  --gl-accent: #2454a6;
  position: fixed; z-index: 2147483000; left: 0; top: 0; box-sizing: border-box;
  width: min(22rem, calc(100vw - 16px)); max-height: calc(100vh - 16px); overflow: auto;
  margin: 0; padding: 0.75rem 0.9rem; border: 1px solid var(--gl-border); border-radius: 10px;
  background: var(--gl-bg); color: var(--gl-text); box-shadow: 0 10px 28px rgb(0 0 0 / 0.18);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  text-align: start; white-space: normal; font-style: normal; font-weight: normal; }
.gl-preview[hidden] { display: none; }
.gl-preview[data-theme="light"] { color-scheme: light; }
.gl-preview[data-theme="dark"] { color-scheme: dark; --gl-bg: #181c21; --gl-text: #e6e8eb; --gl-muted: #a3adb8;
  --gl-border: #333b44; --gl-accent: #8fb4ff; }
.gl-preview p { margin: 0 0 0.4rem; }
.gl-preview__thumb { display: block; width: 100%; height: auto; max-height: 9rem; object-fit: contain;
  margin: 0 0 0.5rem; background: #ffffff; border-radius: 6px; }
.gl-preview__title { font-weight: 700; font-size: 1.05em; }
.gl-preview__description, .gl-preview__synonyms { color: var(--gl-muted); font-size: 0.88em; }
.gl-preview__open { color: var(--gl-accent); font-weight: 600; }
@media (prefers-reduced-motion: no-preference) {
  .gl-preview { animation: gl-fade 120ms ease-out; }
  @keyframes gl-fade { from { opacity: 0; } to { opacity: 1; } }
}
`;

let sheet = null;
function styles() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLES);
  }
  return sheet;
}

/** The host's scheme: its `color-scheme` when it names only one, else the reader's preference. */
function themeOf(host) {
  const scheme = getComputedStyle(host).colorScheme || "normal";
  const dark = /\bdark\b/.test(scheme);
  const light = /\blight\b/.test(scheme);
  if (dark !== light) { return dark ? "dark" : "light"; }
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export class GlTerm extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) { return; }
    const slug = (this.getAttribute("slug") || "").trim();
    if (!slug) { return; }
    // Authors may write <gl-term slug="x"><a href="...">text</a></gl-term> so that readers
    // without JavaScript get the link: the element's own link replaces it (one link, not two).
    const own = this.querySelector(":scope > a[href]");
    if (own && this.childElementCount === 1) { own.replaceWith(...own.childNodes); }
    const root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = [styles()];
    const link = element(document, "a", "gl-term");
    link.setAttribute("part", "link");
    link.href = `${GLOSSARY_ORIGIN}/terms/${encodeURIComponent(slug)}`;
    link.append(document.createElement("slot"));
    const card = createCard(document);
    card.setAttribute("part", "card");
    root.append(link, card);
    const controller = new PreviewController(card, {
      origin: GLOSSARY_ORIGIN,
      summaryUrl: (name) => summaryUrl(GLOSSARY_ORIGIN, name),
      onShow: (shown) => shown.setAttribute("data-theme", themeOf(this)),
    });
    const pointer = trackPointerType(this);
    // The card is in this element's shadow tree: entering it is not leaving the element.
    this.addEventListener("pointerenter", (e) => { if (e.pointerType !== "touch") { controller.enter(link, slug); } });
    this.addEventListener("pointerleave", (e) => { if (e.pointerType !== "touch") { controller.leave(); } });
    this.addEventListener("focusin", () => controller.enter(link, slug));
    this.addEventListener("focusout", (e) => { if (!this.contains(e.relatedTarget)) { controller.leave(); } });
    link.addEventListener("click", (e) => { if (pointer.type === "touch") { controller.tap(e, link, slug); } });
  }
}

if (!customElements.get("gl-term")) {
  customElements.define("gl-term", GlTerm);
}
