package dev.graft.compiler.passes;

import dev.graft.compiler.tasks.TaskKind;
import dev.graft.compiler.tasks.TaskPass;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.TrainStep;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Optimizer pass: AdamW inside the graph. For each parameter p with gradient g and state m, v:
 * {@code m' = β1·m + (1-β1)·g}, {@code v' = β2·v + (1-β2)·g²}, {@code p' = p - lr·(m'/(1-β1^t) /
 * (sqrt(v'/(1-β2^t)) + ε) + λ·p)}, with t the step input (1-based) and λ the weight decay,
 * applied to weights but not to biases or parameters marked {@code no_decay}. Frozen parameters
 * and their moments pass through unchanged; a parameter with an update mask (sparse training) is
 * updated where the mask is true and kept, with its moments, elsewhere. Adds the step,
 * learning-rate and state inputs and the updated outputs named by {@link #NAMES}.
 *
 * <p>Last, the finite guard: a bool scalar output, true exactly when the loss and every updated
 * parameter and moment are finite. Each tensor x contributes {@code ReduceSum(x - x)}, which is 0
 * when x is all finite and NaN when any element is NaN or ±∞ (no overflow is possible, unlike a
 * plain sum); the guard is {@code Not(IsNaN(Sum(...)))}. Its nodes come after every other node,
 * so the step's values are unchanged.
 */
public final class AdamWUpdate {
  public static final TrainStep NAMES = TrainStep.newBuilder()
      .setLabels(TaskKind.LABELS)
      .setStep("step")
      .setLearningRate("learning_rate")
      .setLoss(TaskPass.LOSS)
      .setUpdatedSuffix(".next")
      .setFirstMomentSuffix(".adam_m")
      .setSecondMomentSuffix(".adam_v")
      .setFinite("finite")
      .build();

  private AdamWUpdate() {}

  /** The update of the training step, its finite guard over the loss and every updated tensor. */
  public static void add(Graph graph, AdamWSpec o, List<Parameter> params, Map<String, String> grads) {
    add(graph, o, params, grads, List.of(NAMES.getLoss()));
  }

  /**
   * The apply graph ({@code GraphVariant.APPLY}) on an empty {@code graph}: each parameter and, for
   * each trained one, its gradient {@code <parameter><gradientSuffix>} as inputs, then the same
   * update as the training step's, its finite guard over the updated tensors (there is no loss).
   */
  public static void addApply(Graph graph, AdamWSpec o, List<Parameter> params, Map<String, TensorType> types,
      String gradientSuffix) {
    Map<String, String> grads = new java.util.LinkedHashMap<>();
    for (Parameter p : params) {
      graph.addInput(p.getName(), types.get(p.getName()));
    }
    for (Parameter p : params) {
      if (!p.getFrozen()) {
        String g = p.getName() + gradientSuffix;
        graph.addInput(g, types.get(p.getName()));
        grads.put(p.getName(), g);
      }
    }
    add(graph, o, params, grads, List.of());
    ShapeInference.run(graph);
  }

  private static void add(Graph graph, AdamWSpec o, List<Parameter> params, Map<String, String> grads,
      List<String> alsoGuarded) {
    // The parameters' type (all share the host's): a float64 host gets a float64 update.
    int elem = params.isEmpty() ? TensorType.FLOAT : graph.typeOrThrow(params.get(0).getName()).elemType();
    graph.addInput(NAMES.getStep(), TensorType.of(elem));
    graph.addInput(NAMES.getLearningRate(), TensorType.of(elem));
    String one = graph.scalar("/adamw/one", elem, 1);
    String b1 = graph.scalar("/adamw/beta1", elem, o.beta1());
    String b2 = graph.scalar("/adamw/beta2", elem, o.beta2());
    String c1 = graph.scalar("/adamw/one_minus_beta1", elem, 1 - o.beta1());
    String c2 = graph.scalar("/adamw/one_minus_beta2", elem, 1 - o.beta2());
    String eps = graph.scalar("/adamw/epsilon", elem, o.epsilon());
    String wd = graph.scalar("/adamw/weight_decay", elem, o.weightDecay());
    String step = NAMES.getStep();
    String bc1 = graph.op("/adamw/bias_correction1", "Sub", List.of(one, graph.op("/adamw/beta1_t", "Pow", List.of(b1, step))));
    String bc2 = graph.op("/adamw/bias_correction2", "Sub", List.of(one, graph.op("/adamw/beta2_t", "Pow", List.of(b2, step))));
    String lr = NAMES.getLearningRate();
    List<String> guarded = new ArrayList<>(alsoGuarded);
    for (Parameter param : params) {
      String p = param.getName();
      String g = grads.get(p);
      String m = p + NAMES.getFirstMomentSuffix();
      String v = p + NAMES.getSecondMomentSuffix();
      TensorType t = graph.typeOrThrow(p);
      graph.addInput(m, t);
      graph.addInput(v, t);
      String base = "/adamw/" + p;
      String suffix = NAMES.getUpdatedSuffix();
      if (param.getFrozen()) {
        // Passed through unchanged, so the runtime treats every parameter alike.
        graph.outputs().add(graph.opTo(p + suffix, base + "/next", "Identity", List.of(p)));
        graph.outputs().add(graph.opTo(m + suffix, base + "/m", "Identity", List.of(m)));
        graph.outputs().add(graph.opTo(v + suffix, base + "/v", "Identity", List.of(v)));
        guarded.addAll(List.of(p + suffix, m + suffix, v + suffix));
        continue;
      }
      String mask = param.getUpdateMask();
      if (!mask.isEmpty() && graph.producer(mask) == null && !graph.inputs().containsKey(mask)) {
        throw new IllegalArgumentException(p + "'s update mask " + mask + " is not a value of this graph"
            + " (sparse training has no data-parallel apply graph)");
      }
      List<String> m2In = List.of(graph.op(base + "/m_decay", "Mul", List.of(m, b1)),
          graph.op(base + "/m_grad", "Mul", List.of(g, c1)));
      List<String> v2In = List.of(graph.op(base + "/v_decay", "Mul", List.of(v, b2)),
          graph.op(base + "/v_grad", "Mul", List.of(graph.op(base + "/g2", "Mul", List.of(g, g)), c2)));
      String m2 = mask.isEmpty() ? graph.opTo(m + suffix, base + "/m", "Add", m2In)
          : graph.opTo(m + suffix, base + "/m_kept", "Where", List.of(mask, graph.op(base + "/m", "Add", m2In), m));
      String v2 = mask.isEmpty() ? graph.opTo(v + suffix, base + "/v", "Add", v2In)
          : graph.opTo(v + suffix, base + "/v_kept", "Where", List.of(mask, graph.op(base + "/v", "Add", v2In), v));
      String mhat = graph.op(base + "/m_hat", "Div", List.of(m2, bc1));
      String vhat = graph.op(base + "/v_hat", "Div", List.of(v2, bc2));
      String denom = graph.op(base + "/denom", "Add", List.of(graph.op(base + "/sqrt", "Sqrt", List.of(vhat)), eps));
      String update = graph.op(base + "/adam", "Div", List.of(mhat, denom));
      boolean decays = param.getRole() != ParameterRole.HEAD_BIAS && !param.getNoDecay();
      if (decays) {
        update = graph.op(base + "/decayed", "Add", List.of(update, graph.op(base + "/wd", "Mul", List.of(p, wd))));
      }
      String delta = graph.op(base + "/delta", "Mul", List.of(update, lr));
      String next = mask.isEmpty() ? graph.opTo(p + suffix, base + "/next", "Sub", List.of(p, delta))
          : graph.opTo(p + suffix, base + "/next_kept", "Where",
              List.of(mask, graph.op(base + "/next", "Sub", List.of(p, delta)), p));
      graph.outputs().addAll(List.of(next, m2, v2));
      guarded.addAll(List.of(p + suffix, m2, v2));
    }
    addFiniteGuard(graph, guarded);
  }

  /** The {@link TrainStep#getFinite()} output: whether every one of {@code values} is finite. */
  private static void addFiniteGuard(Graph graph, List<String> values) {
    List<String> zeros = new ArrayList<>();
    for (String x : values) {
      String base = "/finite/" + x;
      zeros.add(graph.op(base + "/sum", "ReduceSum", List.of(graph.op(base + "/zero", "Sub", List.of(x, x))),
          Node.attr("keepdims", 0L)));
    }
    String total = zeros.size() == 1 ? zeros.get(0) : graph.op("/finite/total", "Sum", zeros);
    graph.outputs().add(graph.opTo(NAMES.getFinite(), "/finite/not_nan", "Not",
        List.of(graph.op("/finite/is_nan", "IsNaN", List.of(total)))));
  }
}
