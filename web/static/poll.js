// Polls a post until the pipeline has decided it (GET /web/posts/{id}, the API's post shape).
// On the upload page it then shows the decision; on a pending post's page it reloads.
// Text goes in with textContent only, so nothing a user typed is ever parsed as HTML.
"use strict";

const POLL_MS = 1000;
const GIVE_UP_MS = 5 * 60 * 1000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function link(href, text) {
  const a = el("a", text);
  a.href = href;
  return a;
}

function describe(post, detail) {
  detail.replaceChildren();
  const d = post.decision;
  if (post.status === "rejected") {
    const r = post.rejection;
    detail.append(el("p", `Rejected at ${r.stage}: ${r.reason} — ${r.detail}`, "error"));
    return;
  }
  const fig = el("figure", undefined, "result-figure");
  const img = el("img");
  img.src = `/web/images/${d.image.sha256}`;
  img.alt = post.title || "untitled";
  fig.append(img);
  const facts = el("div");
  const kind = {
    "new-cluster": "a new image, starting a new cluster",
    "merge-center": "a new image, joining a cluster of similar images",
    "duplicate-reference": "a duplicate of an image already stored",
  }[d.kind] || d.kind;
  facts.append(el("p", `Decision: ${d.kind} — ${kind}.`, "decision"));
  if (d.kind === "duplicate-reference") {
    const p = el("p", "Original: ");
    p.append(link(`/posts/${d.image.first_post_id}`, `${d.image.first_author}'s post`));
    facts.append(p);
    const ev = d.evidence;
    if (ev) {
      const dist = ev.distance === null ? "" : ` (distance ${ev.distance.toPrecision(3)})`;
      facts.append(el("p", `Evidence: ${methods[ev.method] || ev.method}${dist}`));
      if (ev.reason) {
        const p = el("p", "Accepted by ");
        p.append(el("code", ev.reason));
        facts.append(p);
      }
      if (ev.region) {
        const pct = (v) => Math.round(v * 100);
        facts.append(el("p", `It shows x ${pct(ev.region.x0)}–${pct(ev.region.x1)} %, ` +
          `y ${pct(ev.region.y0)}–${pct(ev.region.y1)} % of the original.`));
      }
    }
  }
  if (post.alert) {
    const p = el("p");
    p.append(el("span", "possible IP theft", "badge alert"));
    p.append(document.createTextNode(` ${post.alert.author} posted ${post.alert.original_author}'s image`));
    facts.append(p);
  }
  const p = el("p");
  p.append(link(`/posts/${post.post_id}`, "Open the post page →"));
  facts.append(p);
  fig.append(facts);
  detail.append(fig);
}

async function poll(postId, onDone, onWait) {
  const started = Date.now();
  for (;;) {
    let post = null;
    try {
      const resp = await fetch(`/web/posts/${encodeURIComponent(postId)}`, {credentials: "same-origin"});
      if (resp.ok) post = await resp.json();
      else onWait(`the server answered ${resp.status}; retrying`);
    } catch (err) {
      onWait(`the server did not answer (${err}); retrying`);
    }
    if (post && post.status !== "pending") return onDone(post);
    if (Date.now() - started > GIVE_UP_MS) return onWait("no decision after 5 minutes: is the pipeline running? (picnix pipeline status)");
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

const result = document.getElementById("upload-result");
const methods = result ? JSON.parse(result.dataset.methods) : {};
if (result) {
  const status = document.getElementById("result-status");
  const detail = document.getElementById("result-detail");
  poll(result.dataset.post, (post) => {
    status.textContent = post.status;
    result.dataset.status = post.status;
    describe(post, detail);
  }, (text) => { status.textContent = text; });
}

const pending = document.getElementById("post-status");
if (pending && pending.dataset.status === "pending") {
  poll(pending.dataset.post, () => window.location.reload(), (text) => { pending.textContent = `pending: ${text}`; });
}
