// Previews of entries on our own pages: hovering, focusing or first tapping any link to an
// entry (related terms, [[links]] in the text, search results, A-Z lists...) shows its title,
// summary, synonyms and illustration in a card, from /api/terms/{slug}/summary. The timings
// and the card are those of <gl-term> (static/embed/gl-term.js, imported: one implementation);
// the card's styles are site.css's "previews" section. Without this file links just navigate.
import {
  PreviewController,
  createCard,
  summaryUrl,
  trackPointerType,
} from "/embed/gl-term.js";

const ENTRY_PATH = /^\/terms\/([^/.]+)$/; // an entry's page; not /terms, not its .md twin

/** The entry slug a link points to on this site, or null (the current page's own links too). */
function entrySlug(link) {
  if (!link || link.origin !== location.origin || link.pathname === location.pathname) {
    return null;
  }
  const match = ENTRY_PATH.exec(link.pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

function start() {
  const card = createCard(document);
  document.body.append(card);
  const controller = new PreviewController(card, {
    origin: location.origin,
    summaryUrl: (slug) => summaryUrl(location.origin, slug),
  });
  const pointer = trackPointerType(document);
  const linkOf = (target) => {
    const link = target instanceof Element ? target.closest("a[href]") : null;
    return link && !card.contains(link) && entrySlug(link) ? link : null;
  };

  document.addEventListener("pointerover", (event) => {
    if (event.pointerType === "touch") { return; }
    if (card.contains(event.target)) { controller.stay(); return; }
    const link = linkOf(event.target);
    if (link) { controller.enter(link, entrySlug(link)); }
  });
  document.addEventListener("pointerout", (event) => {
    if (event.pointerType === "touch") { return; }
    const from = card.contains(event.target) ? card : linkOf(event.target);
    if (from && !from.contains(event.relatedTarget)) { controller.leave(); }
  });
  document.addEventListener("focusin", (event) => {
    const link = linkOf(event.target);
    if (link) { controller.enter(link, entrySlug(link)); }
  });
  document.addEventListener("focusout", (event) => {
    const from = card.contains(event.target) ? card : linkOf(event.target);
    const to = event.relatedTarget;
    if (from && !card.contains(to) && to !== controller.link) { controller.leave(); }
  });
  document.addEventListener("click", (event) => {
    const link = pointer.type === "touch" ? linkOf(event.target) : null;
    if (link) { controller.tap(event, link, entrySlug(link)); }
  });
}

if (window.fetch) { start(); }
