package dev.graft.compiler;

/**
 * Which graph of a graft a pipeline run builds. One plan (validation, site selection) serves
 * every variant; {@link GraftCompiler} then runs placement, the task and what follows once per
 * variant, and checks that every variant declares the same parameters (names, shapes, element
 * types, roles, in order), so the runtime can feed one set of parameter tensors to all of them.
 *
 * <p>Kinds ask {@link #trains()} rather than comparing with {@link #TRAIN}: the update graph and
 * the gathered graph are inference graphs too, and a kind that needs to know more than "is this
 * a training step" switches on the variant.
 *
 * <p>{@link #GATHERED} is compiled only when asked for and declares no parameters of its own: it
 * takes N adapters' factors stacked as inputs (see the manifest's {@code GatheredGraph}). {@link
 * #GRADIENT} and {@link #APPLY}, the training step cut in two for data-parallel training, are
 * compiled together when either is asked for (see the manifest's {@code DataParallelGraphs}).
 */
public enum GraphVariant {
  /** The inference graph: the adapted host and the task's output; no loss, no randomness. */
  INFERENCE,
  /**
   * The training step: the adapted host with its training-only nodes (dropout, per-step draws
   * from the seed input, auxiliary losses), the task's loss, its gradient and the AdamW update.
   */
  TRAIN,
  /**
   * The update graph: from the parameters and the host weights, the weight update of every linear
   * site whose adapter has one, as low-rank factors ({@link dev.graft.compiler.passes.SiteUpdates});
   * placed as the inference graph (no dropout), it outputs only the updates.
   */
  UPDATE,
  /**
   * The merged graph: the inference graph in which every mergeable linear site ({@link
   * dev.graft.compiler.passes.SiteUpdates}) reads a merged weight (and bias) declared as external
   * data in place of its adapter, the other adapters placed as usual; an export fills the merged
   * tensors from the update graph. Its outputs: the task's, then the host's own.
   */
  MERGE,
  /**
   * The gathered multi-adapter graph: the host where each linear site of the graft adds {@code
   * (x·A_row)·B_row} with the rows picked per batch row by an adapter index from N stacked
   * adapters, and the head gathered per row likewise (see {@code passes.GatheredAdapters}).
   */
  GATHERED,
  /**
   * The training step's first half: the training graph's forward and backward pass (inputs as
   * {@link #TRAIN}'s without the optimizer state), its outputs the loss and the gradient of the
   * loss with respect to every trained parameter, {@code <parameter>.grad}; no update. Built from
   * the training graph itself, so its loss and gradients are the training step's.
   */
  GRADIENT,
  /**
   * The training step's second half: from the parameters, their AdamW moments, the step, the
   * learning rate and one gradient per trained parameter (inputs named as {@link #GRADIENT}'s
   * outputs), the same AdamW update and finite guard as {@link #TRAIN}'s, to the same outputs. No
   * host, no task: a data-parallel trainer feeds it the gradients averaged over replicas.
   */
  APPLY;

  /** Whether this variant is a training step: dropout, the per-step seed and losses go only there. */
  public boolean trains() {
    return this == TRAIN || this == GRADIENT;
  }
}
