package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * A kind whose adapter on a linear site {@code y = g·x·W (+ b)} ({@code g}: a Gemm's alpha, else
 * 1; {@code x}: the site's input, transposed for a Gemm with {@code transA=1}; W {@code [in,
 * out]}) changes the layer's weight, and can say by how much: {@code y' = g·x·(W + ΔW) (+ b +
 * Δb)}, or for a kind that is not additive (DoRA) {@code y' = g·x·W' (+ b)}. The update is in the
 * weight's own space (the Gemm's alpha is the site's, not the update's), so a host node given
 * {@code W + ΔW} (its transpose for a Gemm with {@code transB=1}) computes the adapted layer.
 *
 * <p>{@link #weightUpdate} only adds the nodes of the update; the caller decides where it goes (a
 * merged weight, a stack of adapters gathered per row …). It reads the adapter's parameters by
 * the names a caller gives ({@link SiteTensors}): the placed parameters themselves ({@link #tensors})
 * or any tensors of the same shapes.
 *
 * <p>Exact in the inference graph's form (no dropout; DyLoRA at its full rank).
 */
public interface LinearUpdateKind extends AdapterKind {
  /**
   * The update at one site.
   *
   * @param weight {@code [in, out]}: {@code ΔW}, or with {@code merged} the adapted weight {@code
   *     W'} itself
   * @param merged whether {@code weight} replaces W rather than adding to it (DoRA)
   * @param bias {@code Δb}, added to what the layer adds after its weight term (the 1-D bias of
   *     the {@code Add} after the site, or a Gemm's C input, before the Gemm's beta), where the
   *     adapter changes it (IA³ scaling a layer's output); null where it does not
   */
  record WeightUpdate(String weight, boolean merged, @Nullable String bias) {
    public static WeightUpdate delta(String weight) {
      return new WeightUpdate(weight, false, null);
    }
  }

  /**
   * The tensors an update reads at one site.
   *
   * @param hostWeight the host's weight as the site node reads it ({@link LinearSite#weight}),
   *     {@code [in, out]} or, for a Gemm with {@code transB=1}, {@code [out, in]}
   * @param parameters the adapter's parameters by local name: a site's own by their suffix
   *     ({@code lora_A}, {@code lokr_w2_b}, {@code ia3_l}), shared ones by the name of the pair or
   *     inventory ({@code vera_A}, {@code vera_B})
   */
  record SiteTensors(String hostWeight, Map<String, String> parameters) {
    public SiteTensors {
      parameters = Map.copyOf(parameters);
    }

    /** The tensor of parameter {@code local}. */
    public String parameter(String local) {
      String name = parameters.get(local);
      if (name == null) {
        throw new IllegalArgumentException("no parameter '" + local + "' among " + new TreeMap<>(parameters).keySet());
      }
      return name;
    }

    /** The host's 1-D bias or a Gemm's C, if the site has one ({@link LinearSite#bias}, the Gemm's third input). */
    public static @Nullable String hostBias(Graph graph, LinearSite site) {
      var node = graph.nodes().stream().filter(n -> n.name().equals(site.node())).findFirst().orElseThrow();
      if (node.opType().equals("Gemm") && node.inputs().size() > 2 && !node.input(2).isEmpty()) {
        return node.input(2);
      }
      return site.bias(graph).orElse(null);
    }
  }

  /**
   * Adds to {@code graph} the nodes of this declaration's update at {@code site}, reading {@code
   * tensors}; touches no existing node. {@code graph} holds the site's host node (read for its
   * attributes) and the host weight.
   */
  WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors);

  /**
   * The update {@code ΔW = a·b} as factors of rank {@code rank}: {@code a [in, rank]}, {@code b
   * [rank, out]}.
   */
  record Factors(String a, String b, long rank) {}

  /**
   * The additive update {@link #weightUpdate} gives (no bias change), as low-rank factors where
   * the kind's update is low rank in its parameters (the LoRA family, scaled); null where it is
   * not (the default): the caller then takes the dense {@code ΔW}. Adds nodes as {@link
   * #weightUpdate} does.
   */
  default @Nullable Factors factors(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    return null;
  }

  /**
   * The tensors {@link #weightUpdate} reads at {@code site}, from the parameters the declaration
   * placed: {@code parameters} are the graft's (a {@link Placement}'s, or a manifest's, in order),
   * of which those at {@code site} named for this declaration are taken by their suffix. A kind
   * with parameters shared by its sites overrides this to add them.
   *
   * @param sites every site of the declaration
   */
  default SiteTensors tensors(AdapterSpec spec, List<? extends Site> sites, LinearSite site, List<Parameter> parameters) {
    String prefix = (spec.name().isEmpty() ? "" : spec.name() + ".") + site.modulePath() + ".";
    Map<String, String> local = new TreeMap<>();
    for (Parameter p : parameters) {
      if (p.getSiteNode().equals(site.node()) && p.getName().startsWith(prefix)) {
        local.put(p.getName().substring(prefix.length()), p.getName());
      }
    }
    return new SiteTensors(site.weight(), local);
  }
}
