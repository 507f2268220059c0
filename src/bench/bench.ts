// Throughput benchmark with the protocol of the paper's lab (spec §9.1, ALGM `speedtest.py`): one
// image repeated to the batch at the crop size, forward only, policy network included, warm-up
// iterations, then timed iterations, images/s = batch / mean time per forward. The policy network
// is also timed on its own. Several token budgets can be timed in one run; their timed iterations
// are interleaved round-robin so that a change of machine load (a shared 2-core CI box) hits every
// budget alike and the speed-up ratios stay meaningful.
import os from 'node:os';
import { Graph, slice } from '../graph/index.js';
import { CompiledGraph, type Provider } from '../runtime/session.js';
import { parseProvider } from '../runtime/providers.js';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { constantParams, type Precision } from '../nn/params.js';
import { buildPolicyNet } from '../models/policynet.js';
import { buildCtsSegmenterMicroBatched, defaultMicroBatch, prefixed } from '../cts/segmenter.js';
import type { TokenBudget } from '../cts/budget.js';
import { toGmac } from '../graph/macs.js';
import { segmenterMacs, type SegmenterMacs } from '../cts/macs.js';
import { machineInfo, peakRssMb, physicalCores, timeStats, type MachineInfo, type TimeStats } from './machine.js';
import { benchInput, loadBenchModel, type BenchModel, type BenchModelOptions } from './setup.js';

/** Options of runBench. Sizes are (height, width). */
export interface BenchOptions extends BenchModelOptions {
  /** Images per forward (default 32, the paper's). */
  batch?: number;
  /** Untimed iterations first (default 50). */
  warmup?: number;
  /** Timed iterations (default 100). */
  iters?: number;
  /** Execution provider (default cpu); never falls back to another. */
  provider?: Provider;
  /** Intra-op threads; default the physical core count. */
  threads?: number;
  /** Time one budget after the other instead of interleaving (less memory: one session at a time). */
  sequential?: boolean;
  /**
   * Copy the full logits [B,K,H,W] into a JS buffer on every iteration (what a Predictor user
   * gets). Default: the logits are computed in full but stay in ORT's memory and only a per-image
   * sum of them is fetched, like PyTorch's `model(x)` which leaves its output tensor in place; the
   * copy out of ORT is a cost of the JS binding (1.4-2 s per 1.26 GB here), not of the model.
   */
  fetchLogits?: boolean;
  /**
   * Images per micro-batch inside the graph (default defaultMicroBatch: 2 where one image's
   * attention maps are large, as ViT-S at 512x512, else the whole batch): the batch runs as a
   * sequence of independent micro-batches whose activations stay in cache (see MICRO_BATCH). The
   * batch size, and so images/s per batch, is unchanged; --micro-batch equal to --batch runs it in
   * one piece.
   */
  microBatch?: number;
  /** Progress reports (compile, warm-up and timed phases). */
  onProgress?: (e: BenchProgress) => void;
  /**
   * Another implementation timed in the same run (PyTorch): each of its iterations follows one of
   * cts-seg's, warm-up included, so that both see the same machine load.
   */
  companion?: Companion;
  /**
   * Precision of the Linear layers (default fp32). Several are timed as separate points of the same
   * run, interleaved like budgets (every budget at every precision), so their ratio is a same-run one.
   */
  precision?: Precision | readonly Precision[];
}

/** An implementation that times one iteration of the budget-S model on request, in ms. */
export interface Companion {
  time(kind: 'forward' | 'policy', numShared: number, precision: Precision): Promise<number>;
}

/** The companion's timings for one budget, on the same protocol. */
export interface CompanionResult {
  images_per_second: number;
  images_per_second_median: number;
  ms_per_batch: TimeStats;
  policy_net: { ms_per_batch: TimeStats; share_of_forward: number } | null;
}

/** One progress report. */
export interface BenchProgress {
  phase: 'compile' | 'warmup' | 'timed' | 'policy';
  /** Budget label, e.g. "S=103". */
  label: string;
  done: number;
  total: number;
}

/** The result for one token budget. Field names are the JSON output's. */
export interface BenchResult {
  backbone: string;
  decoder: string;
  classes: number;
  image_size: [number, number];
  patch_size: number;
  weights: string;
  policy_width: number | null;
  batch: number;
  /** Images per micro-batch inside the graph. */
  micro_batch: number;
  warmup: number;
  iters: number;
  num_shared: number;
  num_not_shared: number;
  /** Token reduction 3S / Nb. */
  reduction: number;
  /** Tokens entering the encoder per image, CLS excluded. */
  tokens_per_image: number;
  /** Whether each iteration copied the full logits into JS (else one logit per image). */
  logits_fetched: boolean;
  /** batch / mean time per forward (the paper's Im/sec). */
  images_per_second: number;
  /** batch / median time per forward (robust to load spikes). */
  images_per_second_median: number;
  ms_per_batch: TimeStats;
  /** The policy network alone at the same batch (null without sharing). */
  policy_net: { ms_per_batch: TimeStats; share_of_forward: number } | null;
  /** Per-image multiply-accumulates in billions (spec §9.3 convention). */
  gmacs: { total: number; encoder: number; decoder: number; policy: number; upsample: number };
  /** Achieved GMAC/s (total x images/s). */
  gmacs_per_second: number;
  provider: Provider;
  threads: number;
  machine: MachineInfo;
  /** Peak resident memory of the benchmark process, MiB. */
  peak_rss_mb: number;
  /** 1-minute load average before and after timing (other processes skew timings). */
  load_average: [number, number];
  date: string;
  /** Arithmetic of the Linear layers. */
  precision: Precision;
  /** The companion's numbers for the same budget, when one ran. */
  companion?: CompanionResult;
}

/** Compiles on exactly the requested provider: a benchmark that silently fell back would lie. */
async function compileOn(g: Graph, provider: Provider, threads: number): Promise<CompiledGraph> {
  let fallback = '';
  const s = await CompiledGraph.compile(g, { provider, threads, onFallback: (m) => (fallback = m) });
  if (s.provider !== provider) {
    await s.release();
    throw new CtsError(`the ${provider} execution provider is not available here (${fallback.replace(/; running on .*$/, '')})`);
  }
  return s;
}

interface Point {
  label: string;
  precision: Precision;
  budget: TokenBudget;
  macs: SegmenterMacs;
  session?: CompiledGraph;
  /** Preallocated output buffers of the session (fetched logits). */
  into?: Record<string, HostTensor>;
  policySession?: CompiledGraph;
  times: number[];
  policyTimes: number[];
  companionTimes: number[];
  companionPolicyTimes: number[];
}

async function compilePoint(m: BenchModel, pt: Point, r: ReturnType<typeof resolve>, microBatch: number, fetchLogits: boolean): Promise<void> {
  const { batch, provider, threads } = r;
  const S = pt.budget.numShared;
  const g = new Graph();
  const x = g.input('input', [batch, 3, m.size[0], m.size[1]]);
  const p = constantParams(g, m.weights, { precision: pt.precision });
  const policy = { kind: 'policy_net' as const, bnMode: 'eval' as const, ...(m.policyWidth !== undefined ? { width: m.policyWidth } : {}) };
  const o = { numShared: S, microBatch, ...(S > 0 ? { policy } : {}) };
  if (fetchLogits) {
    const { logits } = buildCtsSegmenterMicroBatched(x, p, m.config, o);
    g.output('logits', logits);
    pt.into = { logits: { dtype: 'float32', shape: [...logits.shape], data: new Float32Array(logits.size) } };
  } else {
    // One logit per image is fetched: ORT still runs every node in full (the x16 upsample writes all
    // [B,K,H,W] logits), but nothing reads them back, as PyTorch's model(x) leaves its output in place.
    // A per-image sum (before 2026-12-05) also read all 1.26 GB of a ViT-S 512² batch of 8: ~27 ms a batch
    // that neither PyTorch nor the paper's timing spends.
    g.output('logits_probe', buildCtsSegmenterMicroBatched(x, p, m.config, { ...o, reduce: (l) => slice(l, [0, 0, 0], [1, 1, 1], [1, 2, 3]) }).logits);
  }
  pt.session = await compileOn(g, provider, threads);
  if (S > 0) {
    const gp = new Graph();
    const xp = gp.input('input', [batch, 3, m.size[0], m.size[1]]);
    gp.output('policy_logits', buildPolicyNet(xp, prefixed(constantParams(gp, m.weights), 'policy_net.'), policy).logits);
    pt.policySession = await compileOn(gp, provider, threads);
  }
}

async function timeOnce(s: CompiledGraph, feeds: Record<string, HostTensor>, into?: Record<string, HostTensor>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await s.run(feeds, undefined, into);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Warm-up then timed iterations, round-robin over the points' sessions of one kind, each followed
 * by the companion's iteration of the same budget when there is one.
 */
async function timeRoundRobin(pts: Point[], kind: 'session' | 'policySession', o: Pick<BenchOptions, 'companion' | 'onProgress'> & { warmup: number; iters: number }, feeds: Record<string, HostTensor>): Promise<void> {
  const live = pts.filter((p) => p[kind]);
  if (live.length === 0) return;
  const label = live.map((p) => p.label).join(',');
  const which = kind === 'session' ? 'forward' : 'policy';
  const one = async (p: Point, record: boolean) => {
    const t = await timeOnce(p[kind]!, feeds, kind === 'session' ? p.into : undefined);
    if (record) (kind === 'session' ? p.times : p.policyTimes).push(t);
    if (!o.companion) return;
    // lets the spinning worker threads of one runtime park before the other one starts
    await sleep(20);
    const c = await o.companion.time(which, p.budget.numShared, p.precision);
    if (record) (kind === 'session' ? p.companionTimes : p.companionPolicyTimes).push(c);
    await sleep(20);
  };
  for (let i = 0; i < o.warmup; i++) {
    for (const p of live) await one(p, false);
    o.onProgress?.({ phase: kind === 'session' ? 'warmup' : 'policy', label, done: i + 1, total: o.warmup });
  }
  for (let i = 0; i < o.iters; i++) {
    for (const p of live) await one(p, true);
    o.onProgress?.({ phase: kind === 'session' ? 'timed' : 'policy', label, done: i + 1, total: o.iters });
  }
}

/** Validates the numeric options and fills defaults. */
function resolve(o: BenchOptions) {
  const batch = o.batch ?? 32, warmup = o.warmup ?? 50, iters = o.iters ?? 100;
  const provider = parseProvider(o.provider ?? 'cpu', 'node');
  for (const [k, v, min] of [['batch', batch, 1], ['warmup', warmup, 0], ['iters', iters, 1]] as const) {
    if (!Number.isInteger(v) || v < min) throw new CtsError(`--${k} must be an integer >= ${min}, got ${v}`);
  }
  const threads = o.threads ?? physicalCores();
  if (!Number.isInteger(threads) || threads < 1) throw new CtsError(`--threads must be a positive integer, got ${threads}`);
  if (o.microBatch !== undefined && (!Number.isInteger(o.microBatch) || o.microBatch < 1)) throw new CtsError(`--micro-batch must be a positive integer, got ${o.microBatch}`);
  return { batch, warmup, iters, provider, threads, microBatch: o.microBatch };
}

/** Runs the benchmark for every budget in `numShared`; one result per budget, in the given order. */
export async function runBench(o: BenchOptions = {}): Promise<BenchResult[]> {
  const r = resolve(o);
  const model = await loadBenchModel(o);
  const { config } = model;
  const [h, w] = model.size;
  // the timed crop is whole patches, as in the paper's protocol: a padded crop would time (and count
  // GMACs and tokens of) pixels that the image does not have
  const patch = config.patch_size;
  if (!(h > 0 && w > 0 && h % patch === 0 && w % patch === 0)) throw new CtsError(`image size ${h}x${w} must be a positive multiple of the patch size ${patch}`);
  const microBatch = Math.min(r.microBatch ?? defaultMicroBatch(config, h, w, r.batch), r.batch);
  const precisions: readonly Precision[] = typeof o.precision === 'string' ? [o.precision] : (o.precision ?? ['fp32']);
  if (precisions.length === 0) throw new CtsError('--precision needs at least one of fp32, int8');
  const points: Point[] = (o.numShared ?? [0]).flatMap((S) => {
    // validates the budget before any compilation: impossible budgets fail fast with the rule
    const macs = segmenterMacs(config, { size: [h, w], numShared: S, ...(model.policyWidth !== undefined ? { policyWidth: model.policyWidth } : {}) });
    const budget = macs.budget;
    return precisions.map((precision) => ({
      label: precisions.length > 1 ? `S=${S} ${precision}` : `S=${S}`, precision, budget, macs, times: [], policyTimes: [], companionTimes: [], companionPolicyTimes: [],
    }));
  });
  const feeds = { input: await benchInput(o, model.size, r.batch) };
  const machine = machineInfo();
  const load0 = os.loadavg()[0]!;
  const groups = o.sequential ? points.map((p) => [p]) : [points];
  try {
    for (const group of groups) {
      for (const [i, p] of group.entries()) {
        o.onProgress?.({ phase: 'compile', label: p.label, done: i, total: group.length });
        await compilePoint(model, p, r, microBatch, !!o.fetchLogits);
      }
      const to = { ...r, ...(o.companion ? { companion: o.companion } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) };
      await timeRoundRobin(group, 'session', to, feeds);
      await timeRoundRobin(group, 'policySession', to, feeds);
      for (const p of group) {
        await p.session?.release();
        await p.policySession?.release();
        delete p.session;
        delete p.policySession;
        delete p.into;
      }
    }
  } finally {
    for (const p of points) {
      await p.session?.release();
      await p.policySession?.release();
    }
  }
  const load1 = os.loadavg()[0]!;
  return points.map((p) => {
    const st = timeStats(p.times);
    const ips = (r.batch * 1000) / st.mean;
    const pol = p.policyTimes.length ? timeStats(p.policyTimes) : undefined;
    return {
      backbone: config.backbone,
      decoder: config.decoder,
      classes: config.n_cls,
      image_size: [h, w],
      patch_size: config.patch_size,
      weights: model.source,
      policy_width: p.budget.numShared > 0 ? (model.policyWidth ?? 1) : null,
      batch: r.batch,
      micro_batch: microBatch,
      warmup: r.warmup,
      iters: r.iters,
      num_shared: p.budget.numShared,
      num_not_shared: p.budget.numNotShared,
      reduction: Math.round(p.budget.reduction * 10000) / 10000,
      tokens_per_image: p.budget.numTokens,
      logits_fetched: !!o.fetchLogits,
      images_per_second: Math.round(ips * 1000) / 1000,
      images_per_second_median: Math.round(((r.batch * 1000) / st.median) * 1000) / 1000,
      ms_per_batch: st,
      policy_net: pol ? { ms_per_batch: pol, share_of_forward: Math.round((pol.mean / st.mean) * 1000) / 1000 } : null,
      gmacs: { total: toGmac(p.macs.total), encoder: toGmac(p.macs.encoder), decoder: toGmac(p.macs.decoder), policy: toGmac(p.macs.policy), upsample: toGmac(p.macs.upsample) },
      gmacs_per_second: Math.round((p.macs.total / 1e9) * ips * 10) / 10,
      provider: r.provider,
      threads: r.threads,
      machine,
      peak_rss_mb: peakRssMb(),
      load_average: [Math.round(load0 * 100) / 100, Math.round(load1 * 100) / 100],
      date: new Date().toISOString(),
      precision: p.precision,
      ...(p.companionTimes.length ? { companion: companionResult(p, r.batch) } : {}),
    };
  });
}

function companionResult(p: Point, batch: number): CompanionResult {
  const st = timeStats(p.companionTimes);
  const pol = p.companionPolicyTimes.length ? timeStats(p.companionPolicyTimes) : undefined;
  return {
    images_per_second: Math.round(((batch * 1000) / st.mean) * 1000) / 1000,
    images_per_second_median: Math.round(((batch * 1000) / st.median) * 1000) / 1000,
    ms_per_batch: st,
    policy_net: pol ? { ms_per_batch: pol, share_of_forward: Math.round((pol.mean / st.mean) * 1000) / 1000 } : null,
  };
}
