// Enough Markdown for a model card (YAML front matter, headings, paragraphs, lists, tables, code, emphasis, links),
// built as DOM nodes from text: nothing in the file is ever parsed as HTML, so a card cannot run script or load
// anything.

import { el } from "./api.js";

/** Inline spans: `code`, **bold**, *emphasis*, [text](http...) links; everything else is text. */
function inline(text) {
  const out = [];
  const pattern = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let at = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    if (m[1] !== undefined) out.push(el("code", {}, m[1]));
    else if (m[2] !== undefined) out.push(el("strong", {}, m[2]));
    else if (m[3] !== undefined) out.push(el("em", {}, m[3]));
    else if (/^https?:\/\//.test(m[5])) out.push(el("a", { href: m[5], rel: "noopener noreferrer" }, m[4]));
    else out.push(`${m[4]} (${m[5]})`);  // relative links point into the model dir, which is not served
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

const cells = (line) => line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());

export function renderMarkdown(source) {
  const root = el("div", { class: "markdown" });
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  if (lines[0] === "---") {  // Hugging Face metadata: shown as it is, folded
    const end = lines.indexOf("---", 1);
    if (end > 0) {
      root.append(el("details", { class: "front-matter" }, el("summary", {}, "Metadata"),
        el("pre", {}, lines.slice(1, end).join("\n"))));
      i = end + 1;
    }
  }
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    if (/^\s*(-{3,}|\*{3,}|_{3,})\s*$/.test(line)) {
      root.append(el("hr"));
      i += 1;
      continue;
    }
    const fence = line.match(/^\s*(```|~~~)/);
    if (fence) {
      const body = [];
      for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i += 1) body.push(lines[i]);
      root.append(el("pre", {}, el("code", {}, body.join("\n"))));
      i += 1;
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      const level = Math.min(6, heading[1].length + 2);  // the card sits under the page's own h1/h2
      root.append(el(`h${level}`, {}, inline(heading[2].replace(/\s#+\s*$/, ""))));
      i += 1;
      continue;
    }
    if (line.trim().startsWith("|") && i + 1 < lines.length && /^\s*\|?\s*:?-{3,}/.test(lines[i + 1])) {
      const head = cells(line);
      const rows = [];
      for (i += 2; i < lines.length && lines[i].trim().startsWith("|"); i += 1) rows.push(cells(lines[i]));
      root.append(el("table", {}, el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, inline(h))))),
        el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, inline(c))))))));
      continue;
    }
    const item = /^\s*([-*+]|\d+[.)])\s+(.*)$/;
    if (item.test(line)) {
      const ordered = /\d/.test(line.match(item)[1]);
      const list = el(ordered ? "ol" : "ul");
      for (; i < lines.length && item.test(lines[i]); i += 1) list.append(el("li", {}, inline(lines[i].match(item)[2])));
      root.append(list);
      continue;
    }
    if (line.startsWith(">")) {
      const quote = [];
      for (; i < lines.length && lines[i].startsWith(">"); i += 1) quote.push(lines[i].replace(/^>\s?/, ""));
      root.append(el("blockquote", {}, inline(quote.join(" "))));
      continue;
    }
    const para = [];
    for (; i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```|~~~|\s*\||\s*([-*+]|\d+[.)])\s)/.test(lines[i]); i += 1) {
      para.push(lines[i].trim());
    }
    if (!para.length) { para.push(line.trim()); i += 1; }
    root.append(el("p", {}, inline(para.join(" "))));
  }
  return root;
}
