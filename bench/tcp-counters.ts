import { readFileSync } from 'node:fs';

/**
 * The kernel's count (machine-wide) of connections dropped at a full listen queue, and of SYNs sent
 * again, from Linux's /proc/net/netstat. A client whose SYN is dropped tries again only after a second,
 * so one such drop shows up as an outlier of about 1 s in whatever waited for that connection (a
 * callback on a new connection, a stream opening): these tell that apart from a slow server.
 */
export interface TcpDrops {
  listen_overflows: number;
  syn_retransmits: number;
}

/** The counters now, or null where the kernel does not publish them. */
export function tcpDropCounters(): TcpDrops | null {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const header = lines.findIndex((line) => line.startsWith('TcpExt:'));
    const names = lines[header]?.trim().split(/\s+/) ?? [];
    const values = lines[header + 1]?.trim().split(/\s+/) ?? [];
    const counter = (name: string): number => {
      const index = names.indexOf(name);
      return index > 0 ? Number(values[index]) : Number.NaN;
    };
    const counters = { listen_overflows: counter('ListenOverflows'), syn_retransmits: counter('TCPSynRetrans') };
    return Number.isFinite(counters.listen_overflows) && Number.isFinite(counters.syn_retransmits) ? counters : null;
  } catch {
    return null;
  }
}

/** What the counters rose by since `before` (null when either reading is missing). */
export function tcpDropsSince(before: TcpDrops | null): TcpDrops | null {
  const now = tcpDropCounters();
  return before && now
    ? { listen_overflows: now.listen_overflows - before.listen_overflows, syn_retransmits: now.syn_retransmits - before.syn_retransmits }
    : null;
}
