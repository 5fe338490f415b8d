package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * VeRA: one pair of frozen random projections shared by every site of a declaration, {@code A
 * [in_max, r]} and {@code B [r, out_max]} (the transposes of PEFT's {@code vera_A [r, in_max]}
 * and {@code vera_B [out_max, r]}), and per site two trained vectors {@code λ_d [r]} and {@code
 * λ_b [out]}. Beside each site {@code y = x·W} it adds {@code λ_b ⊙ ((λ_d ⊙ (dropout(x) ·
 * A[:in, :])) · B[:, :out])}: each site reads the top-left block of the shared projections its
 * dimensions need. As in PEFT, A and B start uniform in {@code ±sqrt(6 / fan_in)} (fan-in
 * {@code in_max} and {@code r}), {@code λ_d} at {@code dInitial} and {@code λ_b} at zero, so the
 * update starts at zero.
 */
public final class VeraKind implements LinearUpdateKind {
  /** PEFT's keys of the shared projections (the adapter name removed, as PEFT saves them). */
  public static final String PEFT_A = "base_model.vera_A";
  public static final String PEFT_B = "base_model.vera_B";

  @Override
  public String id() {
    return "vera";
  }

  @Override
  public String displayName() {
    return "VeRA";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Vera";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 256, 1, LoraKind.MAX_RANK, "rank r of the shared random projections (PEFT's default 256)"),
        AdapterOption.positive("dInitial", 0.1, "initial value of every element of λ_d"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"),
        AdapterOption.bool("saveProjection", true, "save the shared projections with the adapter (else they are regenerated from the model's seed)"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int rank = spec.intOption("rank");
    long inMax = sites.stream().mapToLong(s -> ((LinearSite) s).in()).max().orElseThrow();
    long outMax = sites.stream().mapToLong(s -> ((LinearSite) s).out()).max().orElseThrow();
    String[] projections = projections(placement, rank, inMax, outMax, spec.boolOption("saveProjection"));
    Graph g = placement.graph();
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      LinearAdapters.Input in = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), "vera");
      String lambdaD = placement.parameter(site, "vera_lambda_d", rank).init(Init.CONSTANT, spec.doubleOption("dInitial"))
          .noDecay().save(Placement.peftKey(site, "vera_lambda_d")).add();
      String lambdaB = placement.parameter(site, "vera_lambda_b", site.out()).init(Init.ZEROS, 0)
          .noDecay().save(Placement.peftKey(site, "vera_lambda_b")).add();
      String a = slice(g, in.base() + "/A", projections[0], 0, site.in(), inMax);
      String b = slice(g, in.base() + "/B", projections[1], 1, site.out(), outMax);
      String down = g.op(in.base() + "/MatMul_A", "MatMul", List.of(in.value(), a));
      String scaledDown = g.op(in.base() + "/Mul_lambda_d", "Mul", List.of(down, lambdaD));
      String up = g.op(in.base() + "/MatMul_B", "MatMul", List.of(scaledDown, b));
      String update = g.op(in.base() + "/Mul_lambda_b", "Mul", List.of(up, lambdaB));
      LinearAdapters.addToOutput(placement, site, in.base(), update, in.outputScale());
    }
  }

  /**
   * The shared projections {A, B} this declaration reads: an existing pair of another VeRA
   * declaration when it has this rank and is large enough (PEFT's rule for a second adapter),
   * else a new frozen pair ({@code vera_A}/{@code vera_B}, then {@code vera_A_2}/{@code vera_B_2} …).
   */
  private static String[] projections(Placement placement, int rank, long inMax, long outMax, boolean save) {
    String[] existing = existingPair(placement.parameters(), rank, inMax, outMax, save);
    if (existing != null) {
      return existing;
    }
    long pairs = placement.parameters().stream()
        .filter(p -> p.getName().startsWith("vera_A") && p.getSiteNode().isEmpty()).count();
    String suffix = pairs == 0 ? "" : "_" + (pairs + 1);
    Placement.ParameterBuilder a = placement.sharedParameter("vera_A" + suffix, inMax, rank)
        .init(Init.UNIFORM, Math.sqrt(6.0 / inMax)).frozen();
    Placement.ParameterBuilder b = placement.sharedParameter("vera_B" + suffix, rank, outMax)
        .init(Init.UNIFORM, Math.sqrt(6.0 / rank)).frozen();
    if (save) {
      a.saveTransposed(PEFT_A + suffix);
      b.saveTransposed(PEFT_B + suffix);
    }
    return new String[] {a.add(), b.add()};
  }

  /**
   * The first unnamed pair among {@code parameters} of this rank, large enough for {@code [inMax,
   * outMax]} and saved as {@code save} says, or null.
   */
  private static String @Nullable [] existingPair(List<Parameter> parameters, int rank, long inMax, long outMax, boolean save) {
    for (Parameter p : parameters) {
      if (!p.getName().startsWith("vera_A") || !p.getSiteNode().isEmpty()) {
        continue;
      }
      String b = "vera_B" + p.getName().substring("vera_A".length());
      Parameter pb = parameters.stream().filter(q -> q.getName().equals(b)).findFirst().orElseThrow();
      if (p.getShape(1) == rank && p.getShape(0) >= inMax && pb.getShape(1) >= outMax
          && p.getSaveKey().isEmpty() != save) {
        return new String[] {p.getName(), b};
      }
    }
    return null;
  }

  /**
   * The site's {@code vera_lambda_d}, {@code vera_lambda_b}, and as {@code vera_A}, {@code vera_B}
   * the shared pair the declaration reads: the one {@link #place} chose, found again among the
   * parameters of the declarations placed before it, else its own.
   */
  @Override
  public SiteTensors tensors(AdapterSpec spec, List<? extends Site> sites, LinearSite site, List<Parameter> parameters) {
    Map<String, String> local = new HashMap<>(LinearUpdateKind.super.tensors(spec, sites, site, parameters).parameters());
    String lambda = local.get("vera_lambda_d");
    int adapter = parameters.stream().filter(p -> p.getName().equals(lambda)).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("no vera_lambda_d at " + site.node())).getAdapter();
    long inMax = sites.stream().mapToLong(s -> ((LinearSite) s).in()).max().orElseThrow();
    long outMax = sites.stream().mapToLong(s -> ((LinearSite) s).out()).max().orElseThrow();
    String[] pair = existingPair(parameters.stream().filter(p -> p.getAdapter() < adapter).toList(),
        spec.intOption("rank"), inMax, outMax, spec.boolOption("saveProjection"));
    if (pair == null) {
      List<Parameter> own = parameters.stream()
          .filter(p -> p.getAdapter() == adapter && p.getSiteNode().isEmpty() && p.getSite().startsWith("vera_")).toList();
      Parameter a = own.stream().filter(p -> p.getSite().startsWith("vera_A")).findFirst().orElseThrow();
      String b = a.getName().substring(0, a.getName().length() - a.getSite().length()) + "vera_B"
          + a.getSite().substring("vera_A".length());
      pair = new String[] {a.getName(), b};
    }
    local.put("vera_A", pair[0]);
    local.put("vera_B", pair[1]);
    return new SiteTensors(site.weight(), local);
  }

  /**
   * {@code ΔW = A[:in, :] · diag(λ_d) · B[:, :out] · diag(λ_b)}: {@code (A[:in, :] ⊙ λ_d) · B[:,
   * :out]}, each column j times {@code λ_b[j]}.
   */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "vera") + "/delta";
    String a = slice(graph, base + "/A", tensors.parameter("vera_A"), 0, site.in(), -1);
    String b = slice(graph, base + "/B", tensors.parameter("vera_B"), 1, site.out(), -1);
    String down = graph.op(base + "/Mul_lambda_d", "Mul", List.of(a, tensors.parameter("vera_lambda_d")));
    String up = graph.op(base + "/MatMul_B", "MatMul", List.of(down, b));
    return WeightUpdate.delta(graph.op(base + "/Mul_lambda_b", "Mul", List.of(up, tensors.parameter("vera_lambda_b"))));
  }

  /** {@code value[:size, :]} (axis 0) or {@code value[:, :size]} (axis 1); the value itself when {@code size = full}. */
  private static String slice(Graph g, String base, String value, long axis, long size, long full) {
    if (size == full) {
      return value;
    }
    return g.op(base + "/Slice", "Slice", List.of(value, g.longs(base + "/starts", List.of(0L)),
        g.longs(base + "/ends", List.of(size)), g.longs(base + "/axes", List.of(axis))));
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "VERA";
  }

  /**
   * PEFT's VeRA config. False (Graft's config) for a second VeRA declaration (PEFT has one rank
   * and one projection pair per adapter) and without saved projections (PEFT would regenerate
   * them from its own torch generator, not Graft's).
   */
  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    if (c.has("r") || !spec.boolOption("saveProjection")) {
      return false;
    }
    c.addProperty("r", spec.intOption("rank"));
    PeftTargets.add(c, "target_modules", sites);
    c.addProperty("projection_prng_key", 0);
    c.addProperty("save_projection", true);
    c.addProperty("vera_dropout", spec.doubleOption("dropout"));
    c.add("d_initial", PeftTargets.number(spec.doubleOption("dInitial")));
    c.addProperty("fan_in_fan_out", false);
    c.addProperty("bias", "none");
    c.addProperty("init_weights", true);
    c.add("layers_to_transform", JsonNull.INSTANCE);
    c.add("layers_pattern", JsonNull.INSTANCE);
    return true;
  }
}
