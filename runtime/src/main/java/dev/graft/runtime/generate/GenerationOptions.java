package dev.graft.runtime.generate;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.Arrays;

/**
 * How {@code AdapterModel.generate} picks tokens: greedy (the default), or sampled from the
 * softmax of the logits divided by a temperature, cut to the {@code topK} most likely tokens and to
 * the smallest set whose probability reaches {@code topP} (nucleus), with a {@link
 * java.util.SplittableRandom} from {@code seed} (same seed, same tokens). A row stops at one of
 * {@code stopTokens} (kept as its last token). {@code maxLength} bounds prompt plus new tokens
 * below the host's positions (0: the host's). {@code pastKeyValues} false re-runs the whole prefix
 * each step even where the host has a key/value cache.
 */
public record GenerationOptions(
    boolean sample, double temperature, int topK, double topP, long seed, long[] stopTokens, int maxLength,
    boolean pastKeyValues) {

  public GenerationOptions {
    if (!(temperature > 0) || !Double.isFinite(temperature)) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "temperature must be a finite number > 0, got " + temperature);
    }
    if (topK < 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "topK must be >= 0 (0: all tokens), got " + topK);
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "topP must be in (0, 1], got " + topP);
    }
    if (maxLength < 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "maxLength must be >= 0 (0: the host's positions), got "
          + maxLength);
    }
    stopTokens = stopTokens.clone();
  }

  /** Greedy decoding (the most likely token each step), the key/value cache used where the host has one. */
  public static GenerationOptions greedy() {
    return new GenerationOptions(false, 1.0, 0, 1.0, 0, new long[0], 0, true);
  }

  /** Sampling at temperature 1 over all tokens, seeded. */
  public static GenerationOptions sampling(long seed) {
    return new GenerationOptions(true, 1.0, 0, 1.0, seed, new long[0], 0, true);
  }

  public GenerationOptions withTemperature(double t) {
    return new GenerationOptions(sample, t, topK, topP, seed, stopTokens, maxLength, pastKeyValues);
  }

  public GenerationOptions withTopK(int k) {
    return new GenerationOptions(sample, temperature, k, topP, seed, stopTokens, maxLength, pastKeyValues);
  }

  public GenerationOptions withTopP(double p) {
    return new GenerationOptions(sample, temperature, topK, p, seed, stopTokens, maxLength, pastKeyValues);
  }

  public GenerationOptions withSeed(long s) {
    return new GenerationOptions(sample, temperature, topK, topP, s, stopTokens, maxLength, pastKeyValues);
  }

  public GenerationOptions withStopTokens(long... tokens) {
    return new GenerationOptions(sample, temperature, topK, topP, seed, tokens, maxLength, pastKeyValues);
  }

  public GenerationOptions withMaxLength(int length) {
    return new GenerationOptions(sample, temperature, topK, topP, seed, stopTokens, length, pastKeyValues);
  }

  public GenerationOptions withPastKeyValues(boolean use) {
    return new GenerationOptions(sample, temperature, topK, topP, seed, stopTokens, maxLength, use);
  }

  @Override
  public long[] stopTokens() {
    return stopTokens.clone();
  }

  boolean stops(long token) {
    return Arrays.stream(stopTokens).anyMatch(t -> t == token);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof GenerationOptions g && sample == g.sample && temperature == g.temperature && topK == g.topK
        && topP == g.topP && seed == g.seed && Arrays.equals(stopTokens, g.stopTokens) && maxLength == g.maxLength
        && pastKeyValues == g.pastKeyValues;
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(stopTokens) * 31 + Long.hashCode(seed);
  }

  @Override
  public String toString() {
    return "GenerationOptions[sample=" + sample + ", temperature=" + temperature + ", topK=" + topK + ", topP=" + topP
        + ", seed=" + seed + ", stopTokens=" + Arrays.toString(stopTokens) + ", maxLength=" + maxLength
        + ", pastKeyValues=" + pastKeyValues + "]";
  }
}
