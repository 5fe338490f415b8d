package dev.graft.compiler.emit;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.kinds.Placement;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.SavedActivation;
import java.util.List;

/**
 * One variant's pipeline run, finished: its graph, the parameters it declares (adapters', then
 * the head's, in order), the placement that added the adapters (auxiliary losses, host sources)
 * and, for a training step, the forward values its backward pass keeps.
 */
public record VariantGraph(
    GraphVariant variant, Graph graph, List<Parameter> parameters, Placement placement,
    List<SavedActivation> savedActivations) {
  public VariantGraph {
    parameters = List.copyOf(parameters);
    savedActivations = List.copyOf(savedActivations);
  }
}
