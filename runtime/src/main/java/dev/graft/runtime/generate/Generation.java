package dev.graft.runtime.generate;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/** The decoding loop of {@code AdapterModel.generate}: token choice and stopping, over a {@link Decoder}. */
public final class Generation {
  private Generation() {}

  /** One forward run of the inference graph per call. */
  public interface Decoder extends AutoCloseable {
    /** Whether the decoder keeps a key/value cache (then {@link #next} is given only the new tokens). */
    boolean cached();

    /**
     * The last position's logits {@code [batch][vocab]} after {@code ids}: every token so far
     * without a cache, the tokens the cache has not seen with one; {@code length} is the total so far.
     */
    float[][] next(long[][] ids, int length);

    @Override
    void close();
  }

  /**
   * New tokens for each prompt (rows of equal length), at most {@code maxNewTokens} each, a row
   * ending early at a stop token; {@code limit} is the most tokens a sequence may hold (0: none known).
   */
  public static long[][] run(Decoder decoder, long[][] prompts, int maxNewTokens, GenerationOptions options,
      long limit) {
    if (prompts.length == 0 || prompts[0].length == 0) {
      throw new TensorMismatchException("input_ids", "prompts [batch >= 1, length >= 1]",
          prompts.length == 0 ? "no prompt" : "an empty prompt");
    }
    for (int r = 1; r < prompts.length; r++) {
      if (prompts[r].length != prompts[0].length) {
        throw new TensorMismatchException("input_ids", "prompts of equal length " + prompts[0].length,
            "row " + r + " has " + prompts[r].length + " tokens");
      }
    }
    if (maxNewTokens < 1) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "maxNewTokens must be >= 1, got " + maxNewTokens);
    }
    int promptLength = prompts[0].length;
    long bound = options.maxLength() > 0 && (limit == 0 || options.maxLength() < limit) ? options.maxLength() : limit;
    if (bound > 0 && (long) promptLength + maxNewTokens > bound) {
      throw new GraftException(RuntimeErrorCode.SEQUENCE_LIMIT, "prompt length " + promptLength + " + maxNewTokens "
          + maxNewTokens + " = " + (promptLength + maxNewTokens) + " tokens exceeds the limit of " + bound
          + (bound == limit ? " (the host's positions)" : " (GenerationOptions.maxLength)"));
    }
    int batch = prompts.length;
    long[][] all = new long[batch][promptLength + maxNewTokens];
    for (int r = 0; r < batch; r++) {
      System.arraycopy(prompts[r], 0, all[r], 0, promptLength);
    }
    List<List<Long>> out = new ArrayList<>();
    boolean[] done = new boolean[batch];
    for (int r = 0; r < batch; r++) {
      out.add(new ArrayList<>());
    }
    SplittableRandom random = new SplittableRandom(options.seed());
    int length = promptLength;
    long[][] fresh = prompts;
    for (int step = 0; step < maxNewTokens; step++) {
      if (!decoder.cached()) {
        fresh = prefix(all, length);
      }
      float[][] logits = decoder.next(fresh, length);
      long[][] chosen = new long[batch][1];
      boolean allDone = true;
      for (int r = 0; r < batch; r++) {
        double u = options.sample() ? random.nextDouble() : 0;
        long token = done[r] ? all[r][length - 1] : pick(logits[r], options, u);
        chosen[r][0] = token;
        all[r][length] = token;
        if (!done[r]) {
          out.get(r).add(token);
          done[r] = options.stops(token);
        }
        allDone &= done[r];
      }
      length++;
      fresh = chosen;
      if (allDone) {
        break;
      }
    }
    long[][] result = new long[batch][];
    for (int r = 0; r < batch; r++) {
      result[r] = out.get(r).stream().mapToLong(Long::longValue).toArray();
    }
    return result;
  }

  private static long[][] prefix(long[][] all, int length) {
    long[][] p = new long[all.length][];
    for (int r = 0; r < all.length; r++) {
      p[r] = Arrays.copyOf(all[r], length);
    }
    return p;
  }

  /**
   * The token for one row's logits: the arg max when greedy (the lowest index among ties);
   * otherwise {@code u} in [0, 1) drawn over the tempered, top-k and top-p cut distribution, tokens
   * taken in order of falling probability.
   */
  static long pick(float[] logits, GenerationOptions o, double u) {
    if (!o.sample()) {
      int best = 0;
      for (int i = 1; i < logits.length; i++) {
        if (logits[i] > logits[best]) {
          best = i;
        }
      }
      return best;
    }
    Integer[] order = new Integer[logits.length];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : Integer.compare(a, b));
    int keep = o.topK() > 0 ? Math.min(o.topK(), order.length) : order.length;
    double max = logits[order[0]] / o.temperature();
    double[] p = new double[keep];
    double total = 0;
    for (int i = 0; i < keep; i++) {
      p[i] = Math.exp(logits[order[i]] / o.temperature() - max);
      total += p[i];
    }
    if (o.topP() < 1) {
      double cumulative = 0;
      int nucleus = 0;
      while (nucleus < keep) {
        cumulative += p[nucleus++] / total;
        if (cumulative >= o.topP()) {
          break;
        }
      }
      keep = nucleus;
      total = 0;
      for (int i = 0; i < keep; i++) {
        total += p[i];
      }
    }
    double target = u * total;
    double acc = 0;
    for (int i = 0; i < keep; i++) {
      acc += p[i];
      if (target < acc) {
        return order[i];
      }
    }
    return order[keep - 1];
  }
}
