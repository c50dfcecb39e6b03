// Copies the dashboard's front-end libraries, installed from the npm registry by `npm ci`
// (versions pinned in package-lock.json), into chalicelib/web/static/vendor/, where the app
// serves them itself: no CDN at run time. `make assets` runs it; its output is not committed.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "chalicelib", "web", "static", "vendor");
const files = [
  ["autobahn-browser", "autobahn.min.js", "autobahn.min.js"],
  ["uplot", "dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["uplot", "dist/uPlot.min.css", "uPlot.min.css"],
  ["autobahn-browser", "LICENSE", "LICENSE.autobahn-browser.txt"],
  ["uplot", "LICENSE", "LICENSE.uplot.txt"],
];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const versions = {};
for (const [pkg, from, to] of files) {
  const root = join(here, "node_modules", pkg);
  versions[pkg] = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
  copyFileSync(join(root, from), join(out, to));
}
writeFileSync(join(out, "manifest.json"), JSON.stringify({ versions, files: files.map((f) => f[2]) }, null, 2) + "\n");
console.log(`dashboard assets: ${Object.entries(versions).map(([p, v]) => `${p} ${v}`).join(", ")} -> ${out}`);
