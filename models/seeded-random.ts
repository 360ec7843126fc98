/**
 * The deterministic random source of the synthetic model's weights. The model file must come out
 * byte-identical on every machine and in every process (its sha256 identifies it in results), so
 * neither Math.random nor crypto may be used: mulberry32 gives a reproducible uint32 stream from a
 * 32-bit seed and Box-Muller turns it into normal samples.
 */

const UINT32_RANGE = 2 ** 32;
// Truncating at two standard deviations and redrawing the rest is what "truncated normal" means
// in the ViT initialisation recipes (timm's trunc_normal_ with a=-2std, b=2std).
const TRUNCATION_STDS = 2;

/** A seeded uniform and normal sampler; the same seed always yields the same sequence. */
export class SeededRandom {
  #state: number;
  #spareNormal: number | undefined;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in (0, 1): zero is excluded so that Box-Muller's log never sees it. */
  uniform(): number {
    // mulberry32 (Tommy Ettinger): passes PractRand far beyond the 22 M draws a ViT-S needs.
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u32 = (t ^ (t >>> 14)) >>> 0;
    return (u32 + 0.5) / UINT32_RANGE;
  }

  /** Standard normal (mean 0, std 1), Box-Muller, both values of each pair used. */
  normal(): number {
    if (this.#spareNormal !== undefined) {
      const spare = this.#spareNormal;
      this.#spareNormal = undefined;
      return spare;
    }
    const radius = Math.sqrt(-2 * Math.log(this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.#spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Fills `out` with normal samples of standard deviation `std`, redrawing those beyond 2 std. */
  fillTruncatedNormal(out: Float32Array, std: number): Float32Array {
    for (let i = 0; i < out.length; i++) {
      let z = this.normal();
      while (Math.abs(z) > TRUNCATION_STDS) z = this.normal();
      out[i] = z * std;
    }
    return out;
  }
}
