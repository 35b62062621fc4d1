import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time per function and per
 * module (file or package), and inclusive time of the project's own functions.
 *
 *   node dist/bench/profile-summary.js bench/profiles/api-….cpuprofile [--top=30]
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function moduleOf(url: string): string {
  if (!url) return '(native/vm)';
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (file.startsWith('node:')) return file;
  const dist = file.indexOf('/dist/');
  return dist >= 0 ? file.slice(dist + 6) : path.basename(file);
}

function main(): void {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  const top = Number(args.find((a) => a.startsWith('--top='))?.slice(6) ?? 30);
  if (!file) throw new Error('usage: profile-summary <file.cpuprofile> [--top=30]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs.entries()].filter(([id]) => ['(idle)', '(program)', '(garbage collector)'].includes(byId.get(id)!.callFrame.functionName));
  const label = (node: ProfileNode) => `${node.callFrame.functionName || '(anonymous)'} ${moduleOf(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;

  const selfByFn = new Map<string, number>();
  const selfByModule = new Map<string, number>();
  const inclusiveOwn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    selfByFn.set(label(node), (selfByFn.get(label(node)) ?? 0) + us);
    const mod = ['(idle)', '(program)', '(garbage collector)'].includes(node.callFrame.functionName) ? node.callFrame.functionName : moduleOf(node.callFrame.url);
    selfByModule.set(mod, (selfByModule.get(mod) ?? 0) + us);
    // Inclusive time of our own code: every distinct project frame on the stack gets the sample.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!;
      const url = frame.callFrame.url;
      if (url.includes('/dist/') && !url.includes('node_modules') && !url.includes('/generated/')) {
        const name = label(frame);
        if (!seen.has(name)) {
          seen.add(name);
          inclusiveOwn.set(name, (inclusiveOwn.get(name) ?? 0) + us);
        }
      }
    }
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms`;
  const print = (title: string, map: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [name, us] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${name}`);
  };
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, of which idle/program/GC: ${idle.map(([id, us]) => `${byId.get(id)!.callFrame.functionName} ${(us / 1e6).toFixed(1)} s`).join(', ')}`);
  print('Self time by module', selfByModule);
  print('Self time by function', selfByFn);
  print('Inclusive time of project functions', inclusiveOwn);
}

main();
