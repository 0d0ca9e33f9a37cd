// Outlines, on each original of the side-by-side view, where its copy lies: the corners come
// from /web/posts/{copy}/region in the original's pixels, drawn as an SVG polygon over the image.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

async function outline(frame) {
  const note = frame.parentElement.querySelector(".region-note");
  let region;
  try {
    const resp = await fetch(frame.dataset.region, {credentials: "same-origin"});
    region = await resp.json();
    if (!resp.ok) {
      note.textContent += ` · no outline: ${region.detail}`;
      return;
    }
  } catch (err) {
    note.textContent += ` · no outline: ${err}`;
    return;
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${region.width} ${region.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.classList.add("region");
  const poly = document.createElementNS(SVG, "polygon");
  poly.setAttribute("points", region.corners.map(([x, y]) => `${x},${y}`).join(" "));
  poly.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(poly);
  frame.append(svg);
  frame.dataset.outlined = "true";
  note.textContent += ` · outlined: where the copy lies (${region.inliers} of ${region.matches} keypoint matches agree; re-estimated for display)`;
}

document.querySelectorAll(".frame[data-region]").forEach(outline);
