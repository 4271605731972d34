// stories_server.mjs: a `castor serve` for the fault and connections suites
// (fault.sh). No npm packages: those suites run without node_modules.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `castor serve` ($CASTOR) on stories260K ($CASTOR_STORIES), one thread, data in
// dataDir; wrap: a shell prefix run first (e.g. "ulimit -n 96"). Resolves
// {url, port, proc, exited, log()}.
export async function startStoriesServer(dataDir, args = [], env = {}, wrap = null) {
  const portFile = join(dataDir, `..`, `port-${process.pid}-${Date.now()}`);
  const argv = ["serve", "-m", process.env.CASTOR_STORIES, "--no-auth", "--host", "127.0.0.1", "--port", "0", "--port-file", portFile,
    "--data-dir", dataDir, "-c", "512", "-t", "1", ...args];
  const proc = wrap ? spawn("bash", ["-c", `${wrap}; exec "$0" "$@"`, process.env.CASTOR, ...argv], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] })
    : spawn(process.env.CASTOR, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((res) => proc.on("exit", (code, sig) => res(sig ? sig : code)));
  for (let i = 0; i < 600 && !existsSync(portFile); i++) {
    if (proc.exitCode !== null) break;
    await sleep(25);
  }
  if (!existsSync(portFile)) {
    proc.kill("SIGKILL");
    throw new Error("server did not start: " + log);
  }
  const port = Number(readFileSync(portFile, "utf8").trim());
  rmSync(portFile, { force: true });
  return { url: `http://127.0.0.1:${port}`, port, proc, exited, log: () => log };
}
