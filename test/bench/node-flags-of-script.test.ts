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
