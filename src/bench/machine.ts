// What a benchmark number needs next to it to be comparable: the machine, the runtime versions and
// robust statistics of the timed iterations.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import ort from 'onnxruntime-node';

/** Machine and runtime facts recorded with every benchmark. */
export interface MachineInfo {
  cpu_model: string;
  /** Physical cores (what ORT uses for its default intra-op thread count). */
  cores: number;
  logical_cpus: number;
  memory_gb: number;
  platform: string;
  node_version: string;
  ort_version: string;
}

/**
 * Physical core count: distinct (physical id, core id) pairs of /proc/cpuinfo on Linux, else the
 * logical CPU count. Node has no API for it; ORT sizes its thread pool by physical cores.
 */
export function physicalCores(): number {
  const logical = os.availableParallelism();
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const pairs = new Set<string>();
    for (const block of info.split(/\n\s*\n/)) {
      const phys = /physical id\s*:\s*(\d+)/.exec(block)?.[1];
      const core = /core id\s*:\s*(\d+)/.exec(block)?.[1];
      if (phys !== undefined && core !== undefined) pairs.add(`${phys}:${core}`);
    }
    return pairs.size > 0 ? Math.min(pairs.size, logical) : logical;
  } catch {
    return logical;
  }
}

/** Collects the machine description once per run. */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu_model: (cpus[0]?.model ?? 'unknown').trim(),
    cores: physicalCores(),
    logical_cpus: os.availableParallelism(),
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()}-${os.arch()}`,
    node_version: process.version,
    ort_version: ort.env.versions.node ?? ort.env.versions.common ?? 'unknown',
  };
}

/** Summary of per-iteration times in milliseconds. */
export interface TimeStats {
  mean: number;
  median: number;
  p10: number;
  p90: number;
  min: number;
  max: number;
}

/** Linear-interpolated quantile of sorted values (numpy's default). */
function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Mean, median, 10th/90th percentiles, min and max of a non-empty list of times. */
export function timeStats(ms: readonly number[]): TimeStats {
  if (ms.length === 0) throw new Error('timeStats needs at least one time');
  const s = [...ms].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    mean: round(s.reduce((a, b) => a + b, 0) / s.length),
    median: round(quantile(s, 0.5)),
    p10: round(quantile(s, 0.1)),
    p90: round(quantile(s, 0.9)),
    min: round(s[0]!),
    max: round(s[s.length - 1]!),
  };
}

/** Peak resident memory of this process so far, in MiB. */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}
