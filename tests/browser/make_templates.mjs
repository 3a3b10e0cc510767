// Writes web/cozy/templates/NAME.json, the workflow templates Cozy's
// extension ships, from the API graphs graphs/NAME.json: each is loaded into
// ComfyUI's frontend (on a `cozy serve` this starts) and saved as the editor
// saves a workflow. Run it again when those graphs change:
//   node tests/browser/make_templates.mjs
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { root, startServer, stopServer } from "../clients/serve.mjs";

const names = ["feedback_loop", "layout_canvas"];
const work = mkdtempSync(join(tmpdir(), "cozy-templates-"));
const server = await startServer(work);
const browser = await chromium.launch({ executablePath: process.env.COZY_CHROMIUM ?? "/usr/bin/chromium",
  headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(server.url);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && document.querySelector('[data-testid="queue-button"]'),
    null, { timeout: 120000 });
  await page.waitForTimeout(2000);
  await page.keyboard.press("Escape");  // the template browser a first visit opens
  for (const name of names) {
    const graph = JSON.parse(readFileSync(join(root, "graphs", `${name}.json`), "utf8"));
    const workflow = await page.evaluate(async ([g, n]) => {
      const app = window.comfyAPI.app.app;
      await app.loadApiJson(g, n);
      await new Promise((r) => setTimeout(r, 500));  // a frame: the editors read their inputs
      // Seeds stay as the graph gives them: a round is reproducible, what
      // changes between queues is what the user changed.
      for (const node of app.graph.nodes)
        for (const w of node.widgets ?? []) if (w.name === "control_after_generate") w.value = "fixed";
      app.graph.arrange?.(60);  // columns by depth: no node over another
      return app.graph.serialize();
    }, [graph, name]);
    writeFileSync(join(root, "web", "cozy", "templates", `${name}.json`), JSON.stringify(workflow, null, 1) + "\n");
    // Its thumbnail in the template browser: the graph, fitted to the view.
    await page.locator("canvas#graph-canvas").click({ position: { x: 700, y: 800 } });
    await page.keyboard.press(".");
    await page.waitForTimeout(800);
    await page.screenshot({ path: join(root, "web", "cozy", "templates", `${name}.jpg`), type: "jpeg", quality: 70,
      clip: { x: 100, y: 100, width: 1000, height: 700 } });
    console.log(`web/cozy/templates/${name}.json`);
  }
} finally {
  await browser.close();
  await stopServer(server.child);
  rmSync(work, { recursive: true, force: true });
}
