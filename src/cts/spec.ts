// How tokens are shared, decided in one place. A checkpoint stores its CTS settings (policy, shared
// superpatches at its crop, policy-network width); a user may override the policy and the budget;
// `resolveSharing` turns both, for one input size, into the SharingSpec that train, eval, infer,
// bench, export and the Segmenter API all build from. Every rule about budgets lives here:
// - `numShared: 0` alone means "no sharing", whatever the stored policy;
// - a sharing policy asked for by name with no budget anywhere is an error (not a silent baseline);
// - a budget with the no_sharing policy is a contradiction;
// - the stored budget applies at the stored crop; at another size the stored token reduction is kept;
// - the policy_net policy needs the network's weights.
import { CtsError } from '../base/errors.js';
import { sharedForReduction, tokenBudget, type TokenBudget } from './budget.js';

/** Token-sharing policies cts-seg implements. */
export type PolicyMethod = 'no_sharing' | 'policy_net' | 'oracle' | 'random';

/** Every policy, in the order the docs list them. */
export const POLICY_METHODS: readonly PolicyMethod[] = ['no_sharing', 'policy_net', 'oracle', 'random'];

/** CTS settings stored with a model. */
export interface CtsSettings {
  policy: PolicyMethod;
  /** Shared superpatches S at the crop size. */
  numShared: number;
  /** Channel multiplier of the policy network (1 = EfficientNet-Lite0). */
  policyWidth?: number;
}

/** What a user may override. */
export interface SharingOverrides {
  policy?: PolicyMethod | undefined;
  numShared?: number | undefined;
  policyWidth?: number | undefined;
  /** Patches keeping their own token N1, checked against a sharing budget (N1 + 4S = patches), as the official --num-tokens-notshared. */
  numNotShared?: number | undefined;
}

/** The resolved sharing decision for one input size. */
export interface SharingSpec {
  /** Policy actually used (`no_sharing` whenever numShared is 0). */
  policy: PolicyMethod;
  /** Shared superpatches S per image (0 = the plain Segmenter). */
  numShared: number;
  /** Channel multiplier of the policy network, when the policy is the network. */
  policyWidth?: number;
  /** The validated token budget at this size. */
  budget: TokenBudget;
}

/** Parses a policy name (CtsError listing the valid ones); an option not given (undefined) stays undefined. */
export function parsePolicy(name: string): PolicyMethod;
export function parsePolicy(name: string | undefined): PolicyMethod | undefined;
export function parsePolicy(name: string | undefined): PolicyMethod | undefined {
  if (name === undefined) return undefined;
  if (!(POLICY_METHODS as readonly string[]).includes(name)) throw new CtsError(`unknown policy '${name}': expected ${POLICY_METHODS.join(', ')}`);
  return name as PolicyMethod;
}

/** Context of resolveSharing. */
export interface SharingContext {
  /** Input (height, width) the graph runs at. */
  size: readonly [number, number];
  patchSize: number;
  /** The crop the stored budget was chosen for (default: `size`). */
  storedSize?: readonly [number, number];
  /** Whether policy-network weights are at hand (checked for the policy_net policy; default true). */
  hasPolicyNet?: boolean;
}

/** Resolves stored settings and a user's overrides into the sharing of a graph at `ctx.size`. */
export function resolveSharing(stored: CtsSettings, overrides: SharingOverrides, ctx: SharingContext): SharingSpec {
  const { size: [h, w], patchSize } = ctx;
  const o = overrides;
  if (o.numShared !== undefined && !(Number.isInteger(o.numShared) && o.numShared >= 0)) {
    throw new CtsError(`num_shared must be a non-negative integer, got ${o.numShared}`);
  }
  if (o.policy === 'no_sharing' && o.numShared) throw new CtsError(`num_shared ${o.numShared} conflicts with the no_sharing policy`);
  let policy: PolicyMethod = o.policy ?? (o.numShared === 0 ? 'no_sharing' : stored.policy);
  let numShared = 0;
  if (policy !== 'no_sharing') {
    if (o.numShared !== undefined) numShared = o.numShared;
    else {
      const at = ctx.storedSize ?? ctx.size;
      numShared = at[0] === h && at[1] === w || !stored.numShared
        ? stored.numShared
        : sharedForReduction(h - (h % (2 * patchSize)), w - (w % (2 * patchSize)), patchSize, tokenBudget(at[0], at[1], patchSize, stored.numShared).reduction);
      if (numShared === 0 && o.policy !== undefined) {
        throw new CtsError(`the ${policy} policy needs a budget: num_shared S > 0 (the model stores none)`);
      }
    }
  }
  if (numShared === 0) policy = 'no_sharing';
  if (policy === 'policy_net' && ctx.hasPolicyNet === false) {
    throw new CtsError(`the policy_net policy needs policy-network weights (policy_net.*), which this model does not have; use no_sharing${o.policy ? '' : ` (the model's policy is ${stored.policy})`}`);
  }
  const policyWidth = o.policyWidth ?? stored.policyWidth;
  // N1 checks a sharing budget only: the plain Segmenter keeps every patch whatever N1 says
  const budget = tokenBudget(h, w, patchSize, numShared, numShared > 0 ? o.numNotShared : undefined);
  return { policy, numShared, ...(policy === 'policy_net' && policyWidth !== undefined ? { policyWidth } : {}), budget };
}
