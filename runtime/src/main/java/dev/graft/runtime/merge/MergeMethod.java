package dev.graft.runtime.merge;

import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * One merge method: from the inputs' updates at one site, their weights and the options, the
 * merged update of that site. The registry is {@link MergeMethods}; {@link Merge} runs a method
 * over every site and merges the heads.
 */
public interface MergeMethod {
  /** The registry's name, e.g. {@code linear}, {@code ties}. */
  String id();

  /** One line on what it computes, for the command line's help and the docs. */
  String description();

  /**
   * Whether the method computes its formula on the full {@code ΔW} of each site (true for every
   * method but PEFT's A/B-wise combination, which multiplies combined factors and so adds
   * cross-terms between inputs).
   */
  boolean exact();

  /** The options it reads: of {@code density}, {@code dropRate}, {@code lambda}, {@code seed}. */
  Set<String> options();

  /**
   * The merged update of {@code site}.
   *
   * @param deltas one entry per input, in input order; null where that input leaves the site alone
   *     (a zero update)
   * @param weights one weight per input, in input order
   */
  SiteDelta merge(String site, List<@Nullable SiteDelta> deltas, double[] weights, MergeOptions options);
}
