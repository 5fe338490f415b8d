package dev.graft.compiler.kinds.host;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.lora.LinearAdapters;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.List;

/**
 * Sparse fine-tuning of host linear weights, the parameterization of LT-SFT (Ansell et al.,
 * <i>Composable Sparse Fine-Tuning for Cross-Lingual Transfer</i>, ACL 2022): each site's weight
 * W {@code [in, out]} is read as {@code W + Δ}, Δ a parameter {@code <module>.sft_delta} of W's
 * shape starting at zero. The training graph takes a bool input {@code <parameter>.update_mask}
 * of the same shape (the parameter's {@code update_mask}, fed by the runtime): AdamW updates Δ
 * only where it is true and keeps it, with its moments, elsewhere. All true, the step is full
 * fine-tuning of W (LT-SFT's phase 1, Δ = θ1 − θ0); true at the K entries of largest |Δ| after
 * a reset to zero, it trains exactly those K (phase 2). The runtime's {@code SparseFineTuning}
 * drives both phases and saves Δ as a sparse difference (indices and values).
 *
 * <p>With {@code l1Reg = λ > 0} each site adds the reference implementation's L1 pull toward the
 * pretrained weights ({@code cambridgeltl/composable-sft}, {@code SparseFineTuner.training_step}:
 * {@code λ · Σ|θ − θ0| / num_params}) as an auxiliary loss {@code <Δ>.l1 = Σ|Δ|} of weight
 * {@code λ / N}, N the entries of the host's floating-point initializers that are not scalars
 * (the host's parameters). The
 * same λ acts in both phases (the reference has one coefficient per phase).
 */
public final class SparseFineTuningKind implements AdapterKind {
  /** The kind's id. */
  public static final String ID = "ltsft";
  /** Every linear site of the host. */
  static final String DEFAULT_TARGET = ".*";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public String displayName() {
    return "LT-SFT sparse fine-tuning";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.SparseFineTuning";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(AdapterOption.number("l1Reg", 0, 0, Double.POSITIVE_INFINITY,
        "λ of the L1 pull toward the host weights: λ·Σ|Δ| / (the host's parameter count) added to the loss"));
  }

  /**
   * Entries of the floating-point initializers of {@code g} that are not scalars (a scalar is an
   * exported constant such as an epsilon, not a weight): the host's parameter count.
   */
  static long hostParameterCount(Graph g) {
    long n = 0;
    for (TensorProto t : g.initializers().values()) {
      if (TensorType.of(t.getDataType()).isFloating() && t.getDimsCount() > 0) {
        long size = 1;
        for (long d : t.getDimsList()) {
          size = Math.multiplyExact(size, d);
        }
        n = Math.addExact(n, size);
      }
    }
    return n;
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return DEFAULT_TARGET;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    Graph g = placement.graph();
    double l1 = spec.doubleOption("l1Reg");
    double l1Weight = l1 > 0 ? l1 / Math.max(1, hostParameterCount(g)) : 0;
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      Placement.ParameterBuilder delta = placement.parameter(site, "sft_delta", site.in(), site.out())
          .init(Init.ZEROS, 0).noDecay();
      String mask = delta.name() + ".update_mask";
      String d = delta.updateMask(mask).save(Placement.peftKey(site, "sft_delta")).add();
      if (placement.variant().trains()) {
        g.addInput(mask, TensorType.of(TensorType.BOOL, site.in(), site.out()));
      }
      if (l1 > 0) {
        String base = "/" + delta.name() + "/l1";
        String sum = g.op(base + "/ReduceSum", "ReduceSum", List.of(g.op(base + "/Abs", "Abs", List.of(d))),
            attr("keepdims", 0L));
        placement.auxiliaryLoss(delta.name() + ".l1", sum, l1Weight);
      }
      LinearAdapters.Input in = LinearAdapters.input(site, placement, 0, "ltsft");
      LinearAdapters.addWeightUpdate(placement, site, in, d, 1);
    }
  }
}
