package dev.graft.compiler.tasks;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.GatheredTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Task pass: adds the declared task's head ({@link TaskKind}) on the host output it reads and, in
 * a training variant, its labels input and loss plus the adapters' auxiliary losses.
 *
 * <p>Needs: the placed, typed graph of one variant; the host output and its last dimension from
 * the plan. Guarantees: the graph's first output is the task's output (named {@link
 * TaskKind#outputName()}, or a fresh variant of it when the host already has a value so named);
 * in the {@link GraphVariant#INFERENCE} graph of a task whose head pools, the second is
 * the pooled value the head reads, the graft's embedding {@code [batch, hidden]} ({@link
 * #EMBEDDING}, or a fresh variant of it; {@link #embeddingOutput} finds it); no other variant
 * outputs it. Where the variant {@link GraphVariant#trains() trains}, also each auxiliary loss (unweighted,
 * under its name) and {@link #LOSS} = task loss + Σ weight · auxiliary loss, with the labels input
 * {@link TaskKind#labelsName()}. Returns the head's parameters, the same in every variant.
 */
public final class TaskPass {
  /** The training step's loss output. */
  public static final String LOSS = "loss";
  /** The inference graph's embedding output's preferred name. */
  public static final String EMBEDDING = "embedding";
  /** The node that outputs the embedding. */
  private static final String EMBEDDING_NODE = "/head/embedding";

  private TaskPass() {}

  /**
   * Adds {@code task} to {@code graph}.
   *
   * @param output the host output the task reads
   * @param size its last dimension (hidden size for pooled tasks, vocabulary size for the LM)
   * @param auxiliaryLosses the placement's auxiliary loss terms (added where the variant trains)
   * @return the head's parameters (none for the causal LM)
   */
  public static List<Parameter> add(Graph graph, GraphVariant variant, TaskSpec task, String output, long size,
      List<Placement.AuxiliaryLoss> auxiliaryLosses) {
    TaskKind kind = TaskKind.of(task);
    TensorType outType = graph.typeOrThrow(output);
    int elem = outType.elemType();
    List<Parameter> params = new ArrayList<>();
    TaskKind.Head head = kind.addHead(graph, task, output, size, params);
    String result = head.output();
    graph.outputs().clear();
    graph.outputs().add(result);
    if (variant == GraphVariant.INFERENCE && head.pooled() != null) {
      graph.outputs().add(graph.opTo(TaskKind.free(graph, EMBEDDING), EMBEDDING_NODE, "Identity",
          List.of(head.pooled())));
    }
    if (variant.trains()) {
      String loss = kind.addLoss(graph, task, result, outType);
      for (Placement.AuxiliaryLoss aux : auxiliaryLosses) {
        graph.outputs().add(graph.opTo(aux.name(), "/loss/" + aux.name(), "Identity", List.of(aux.value())));
        String weighted = graph.op("/loss/" + aux.name() + "/Mul", "Mul",
            List.of(aux.value(), graph.scalar("/loss/" + aux.name() + "/weight", elem, aux.weight())));
        loss = graph.op("/loss/" + aux.name() + "/Add", "Add", List.of(loss, weighted));
      }
      graph.opTo(LOSS, "/loss/out", "Identity", List.of(loss));
      graph.outputs().add(LOSS);
    }
    return params;
  }

  /**
   * The embedding output of an inference graph {@link #add} built: its second output where the
   * embedding node computes it; empty for a task that does not pool.
   */
  public static Optional<String> embeddingOutput(Graph inference) {
    if (inference.outputs().size() < 2) {
      return Optional.empty();
    }
    String second = inference.outputs().get(1);
    Node producer = inference.producer(second);
    return producer != null && producer.name().equals(EMBEDDING_NODE) ? Optional.of(second) : Optional.empty();
  }

  /**
   * Adds {@code task}'s gathered head ({@link TaskKind#addGatheredHead}) to a gathered graph; its
   * outputs become the task's output and the host output it reads.
   *
   * @return the task's output
   */
  public static String addGathered(Graph graph, TaskSpec task, String output, long size, List<GatheredTensor> stacked) {
    String result = TaskKind.of(task).addGatheredHead(graph, task, output, size, stacked);
    graph.outputs().clear();
    graph.outputs().add(result);
    if (!result.equals(output)) {
      graph.outputs().add(output);
    }
    return result;
  }
}
