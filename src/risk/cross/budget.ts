/**
 * The certificate's arithmetic (docs/risk-cross.md): how a slack budget W is split between the price faces and the
 * deadline, and the rounding guards that keep the double-precision forms on the safe side of the exact ones.
 */

/** Relative widening of a level toward firing: far above double rounding (1e-16), far below any price move. */
export const LEVEL_SLACK = 1e-12;
/** η of the warm bound and the certificate's guard: 2^-40 of the magnitudes involved (design 3.4). */
export const ETA = 2 ** -40;

/**
 * The deadline sits about DEADLINE_STEPS·z² blocks away: a random walk reaches a face z typical moves away within
 * 4·z² steps about 60 % of the time, so the deadline rarely comes first unless time itself is costly.
 */
export const DEADLINE_STEPS = 4;

export interface Plan {
  /** Room in typical moves: every face sits z·v_i from the base price. */
  readonly z: number;
  /** Seconds the certificate covers (the deadline is base time + floor(T)). */
  readonly T: number;
}

/**
 * Splits W (slack less rounding and guard, W > 0) between faces and time so that a·z + φ·min(κ·z²·vT, H) ≤ W, with
 * a = Σ (λ↓_i + λ↑_i)·v_i the slack a typical move of every price costs, φ the slack per second, vT the typical block
 * interval, κ = DEADLINE_STEPS and H the longest time the sensitivity (and the engine) allows. Faces are z typical
 * moves away; the deadline κ·z² blocks away, capped at H: a random walk needs on the order of z² steps to travel z
 * typical moves, so the deadline comes about when a face would (design 3.3 writes z·vT, which would make deadlines
 * fire far more often than faces in calm markets).
 */
export function plan(W: number, a: number, phi: number, blockInterval: number, H: number): Plan {
  const vT = DEADLINE_STEPS * blockInterval;
  if (!(W > 0)) return { z: 0, T: 0 };
  if (phi <= 0) return { z: W / a, T: H }; // a = 0 too: no face at all, z = Infinity
  const rest = W - phi * H;
  if (rest >= 0) {
    const zc = a > 0 ? rest / a : Number.POSITIVE_INFINITY;
    if (zc * zc * vT >= H) return { z: zc, T: H };
  }
  const b = phi * vT;
  const z = (2 * W) / (a + Math.sqrt(a * a + 4 * b * W));
  return { z, T: Math.min(H, z * z * vT) };
}

/** The slack a room of z typical moves consumes, for the ranking of warm accounts: a + φ·κ·vT·zCold per typical move. */
export function roomDenominator(a: number, phi: number, vT: number, zCold: number): number {
  return a + phi * DEADLINE_STEPS * vT * Math.max(1, zCold);
}
