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

  /** Watches a decoding: each run's logits, before the tokens are chosen from them. */
  @FunctionalInterface
  public interface StepListener {
    /**
     * @param length the tokens of each row so far, its prompt included (the positions fed)
     * @param logits {@code [batch][vocab]} at position {@code length - 1} of each row; a row still
     *     inside its prompt, or ended, does not use its row
     */
    void step(int length, float[][] logits);
  }

  /**
   * New tokens for each prompt, at most {@code maxNewTokens} each, a row ending early at a stop
   * token; {@code limit} is the most tokens a sequence may hold (0: none known).
   *
   * <p>Prompts may differ in length, and no row is ever padded: the batch runs in lockstep over
   * positions, starting with the shortest prompt's length (every row's prompt up to there, at once),
   * then one position a step, where a row still inside its prompt is fed its own next prompt token
   * (the logits at that position are not used) and every other row its chosen token. So each row
   * sees exactly its own tokens at its own positions, as it would alone: no attention mask, no
   * position ids are needed, and the longest prompt decides the length the batch reaches. A row
   * that has ended is fed its last token again until every row has ended. Each row draws its
   * samples from its own {@code SplittableRandom(seed + row)}, one draw per new token, so a
   * prompt alone with seed {@code seed + row} gives the same tokens.
   */
  public static long[][] run(Decoder decoder, long[][] prompts, int maxNewTokens, GenerationOptions options,
      long limit) {
    return run(decoder, prompts, maxNewTokens, options, limit, (length, logits) -> {});
  }

  /** {@link #run(Decoder, long[][], int, GenerationOptions, long)}, telling {@code listener} each step's logits. */
  public static long[][] run(Decoder decoder, long[][] prompts, int maxNewTokens, GenerationOptions options,
      long limit, StepListener listener) {
    if (prompts.length == 0) {
      throw new TensorMismatchException("input_ids", "prompts [batch >= 1, length >= 1]", "no prompt");
    }
    int shortest = Integer.MAX_VALUE;
    int longest = 0;
    for (int r = 0; r < prompts.length; r++) {
      if (prompts[r] == null || prompts[r].length == 0) {
        throw new TensorMismatchException("input_ids", "prompts [batch >= 1, length >= 1]",
            "row " + r + " is " + (prompts[r] == null ? "null" : "empty"));
      }
      shortest = Math.min(shortest, prompts[r].length);
      longest = Math.max(longest, prompts[r].length);
    }
    if (maxNewTokens < 1) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "maxNewTokens must be >= 1, got " + maxNewTokens);
    }
    long bound = options.maxLength() > 0 && (limit == 0 || options.maxLength() < limit) ? options.maxLength() : limit;
    if (bound > 0 && (long) longest + maxNewTokens > bound) {
      throw new GraftException(RuntimeErrorCode.SEQUENCE_LIMIT, (shortest == longest ? "prompt length "
          : "longest prompt length ") + longest + " + maxNewTokens " + maxNewTokens + " = " + (longest + maxNewTokens)
          + " tokens exceeds the limit of " + bound
          + (bound == limit ? " (the host's positions)" : " (GenerationOptions.maxLength)"));
    }
    int batch = prompts.length;
    long[][] all = new long[batch][longest + maxNewTokens];
    List<List<Long>> out = new ArrayList<>();
    SplittableRandom[] random = new SplittableRandom[batch];
    for (int r = 0; r < batch; r++) {
      System.arraycopy(prompts[r], 0, all[r], 0, prompts[r].length);
      out.add(new ArrayList<>());
      random[r] = new SplittableRandom(options.seed() + r);
    }
    boolean[] done = new boolean[batch];
    int length = shortest;
    long[][] fresh = prefix(all, length);
    while (true) {
      float[][] logits = decoder.next(fresh, length);
      listener.step(length, logits);
      long[][] chosen = new long[batch][1];
      boolean allDone = true;
      for (int r = 0; r < batch; r++) {
        long token;
        if (length < prompts[r].length) {
          token = prompts[r][length];
        } else if (done[r]) {
          token = all[r][length - 1];
        } else {
          token = pick(logits[r], options, options.sample() ? random[r].nextDouble() : 0);
          out.get(r).add(token);
          done[r] = options.stops(token) || out.get(r).size() == maxNewTokens;
        }
        chosen[r][0] = token;
        all[r][length] = token;
        allDone &= done[r];
      }
      length++;
      if (allDone) {
        break;
      }
      fresh = decoder.cached() ? chosen : prefix(all, length);
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
