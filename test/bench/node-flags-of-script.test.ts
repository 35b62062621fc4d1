import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nodeFlagsOfScript } from '../../bench/processes';

/** The bench (and the process tests) start the service with the node flags its npm scripts give it. */

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ket-node-flags-'));
  const scripts = { api: 'node --initial-old-space-size=256 --trace-gc dist/src/start-api.js', bare: 'node dist/a.js', other: 'tsx src/a.ts' };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ scripts }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('when a script runs node with flags, then they are returned in order, without the script file', () => {
  expect(nodeFlagsOfScript(dir, 'api')).toEqual(['--initial-old-space-size=256', '--trace-gc']);
  expect(nodeFlagsOfScript(dir, 'bare')).toEqual([]);
});

test('when a script is missing or does not run node, then the error names it', () => {
  expect(() => nodeFlagsOfScript(dir, 'other')).toThrow(/"other".*tsx src\/a\.ts/);
  expect(() => nodeFlagsOfScript(dir, 'missing')).toThrow(/"missing"/);
});

test("the service's start scripts all run node with the same flags", () => {
  const flags = ['start', 'start:api', 'start:worker'].map((script) => nodeFlagsOfScript(path.resolve(__dirname, '../..'), script));
  expect(flags[1]).toEqual(flags[0]);
  expect(flags[2]).toEqual(flags[0]);
});
