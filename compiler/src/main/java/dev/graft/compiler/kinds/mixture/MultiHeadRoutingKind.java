package dev.graft.compiler.kinds.mixture;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.bottleneck.Bottlenecks;
import dev.graft.compiler.kinds.lora.LinearAdapters;
import dev.graft.compiler.kinds.lora.LoraKind;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import java.util.List;

/**
 * Multi-head routing over shared LoRA pieces (MHR, Caccia et al. 2023, on Polytropon, Ponti et
 * al. 2023): an inventory of {@code pieces} LoRA modules {@code (A_p [in, r], B_p [r, out])}, each
 * cut into {@code heads} blocks along its input dimension (A's rows, {@code in / heads} each) and
 * its output dimension (B's columns, {@code out / heads} each), as the paper and PEFT's {@code
 * POLY} tuner partition them. Every site has its own routing logits {@code Z [heads, pieces]} and
 * builds its adapter block by block,
 *
 * <pre>
 *   w_h = softmax(Z_h)                              (over pieces)
 *   A[h-th block of rows]    = Σ_p w_h,p · A_p^(h)   [in / heads, r]
 *   B[:, h-th block of cols] = Σ_p w_h,p · B_p^(h)   [r, out / heads]
 *   y' = y + scaling · (dropout(x)·A)·B,  scaling = alpha / r
 * </pre>
 *
 * <p>Routing is per site (task-level, one task), not per token. With {@code sharePieces} (the
 * default) the inventory is shared by every site of the declaration with the same {@code [in,
 * out]}, across layers (a Graft choice for single-task training: the paper keeps one inventory
 * per layer, shared across tasks); without it each site has its own inventory, as in the paper
 * and PEFT. The routing is a softmax over pieces (the paper and PEFT use a relaxed-Bernoulli
 * sample in training and a normalized sigmoid at inference); {@code heads = 1} is Polytropon.
 *
 * <p>Parameters: the pieces {@code lora_A [heads, pieces, in/heads, r]} (each {@code [in/heads,
 * r]} block kaiming-uniform with fan-in {@code in/heads}, as PEFT) and {@code lora_B [heads,
 * pieces, r, out/heads]} (zero), PEFT's {@code poly_lora_A}/{@code poly_lora_B} layout; shared
 * ones are named {@code multi_head_routing.<in>x<out>.lora_A}, per-site ones {@code
 * <module>.multi_head_routing.lora_A}. Per site {@code <module>.multi_head_routing.logits [heads,
 * pieces]}, uniform in ±1e-3 as PEFT, not decayed.
 */
public final class MultiHeadRoutingKind implements ComposableKind {
  public static final int MAX_PIECES = 256;
  static final String NAME = "multi_head_routing";

  @Override
  public String id() {
    return "multi_head_routing";
  }

  @Override
  public String displayName() {
    return "Multi-head routing";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.MultiHeadRouting";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, LoraKind.MAX_RANK, "rank r of every piece"),
        AdapterOption.positive("alpha", 16, "scale numerator: the update is multiplied by alpha / r"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"),
        AdapterOption.integer("pieces", 4, 1, MAX_PIECES, "LoRA pieces in the inventory (PEFT's n_skills)"),
        AdapterOption.integer("heads", 4, 1, 4096,
            "routing heads: blocks of the input (A) and output (B) dimensions routed apart (PEFT's n_splits)"),
        AdapterOption.bool("sharePieces", true, "one inventory for every site of the same [in, out], across layers"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    int heads = spec.intOption("heads");
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      if (site.in() % heads != 0 || site.out() % heads != 0) {
        return List.of(Diagnostic.of(ErrorCode.MULTI_HEAD_ROUTING_HEADS_DO_NOT_DIVIDE, spec.source(), "heads",
            displayName(), heads, site.node(), site.in(), site.out()));
      }
    }
    return List.of();
  }

  @Override
  public String apply(AdapterSpec spec, Site s, String value, long width, Placement placement) {
    if (!(s instanceof LinearSite site)) {
      throw new IllegalArgumentException(displayName() + " reads a linear layer's input; got site " + s);
    }
    int rank = spec.intOption("rank");
    int pieces = spec.intOption("pieces");
    long heads = spec.intOption("heads");
    long in = site.in();
    if (in % heads != 0 || width % heads != 0) {
      throw new IllegalArgumentException("heads " + heads + " must divide [" + in + ", " + width + "] at " + site.node());
    }
    Graph g = placement.graph();
    LinearAdapters.Input input = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), NAME);
    String base = input.base();
    String[] inventory = spec.boolOption("sharePieces")
        ? sharedPieces(placement, rank, pieces, heads, in, width)
        : new String[] {
            pieceA(placement.parameter(site, NAME + ".lora_A", heads, pieces, in / heads, rank), in / heads)
                .save(Placement.peftKey(site, NAME + ".lora_A")).add(),
            placement.parameter(site, NAME + ".lora_B", heads, pieces, rank, width / heads).init(Init.ZEROS, 0)
                .save(Placement.peftKey(site, NAME + ".lora_B")).add()};
    String logits = placement.parameter(site, NAME + ".logits", heads, pieces).init(Init.UNIFORM, 1e-3).noDecay()
        .save(Placement.peftKey(site, NAME + ".logits")).add();

    // w [heads, 1, pieces]: each head's weights over the pieces.
    String w = g.op(base + "/routing/Unsqueeze", "Unsqueeze", List.of(
        g.op(base + "/routing/Softmax", "Softmax", List.of(logits), attr("axis", -1L)),
        g.longs(base + "/routing/axis", List.of(1L))));
    // A: [heads, pieces, in/heads·r] → per head Σ_p w·A_p → [heads, 1, in/heads·r] → [in, r].
    String flatA = g.op(base + "/A/Reshape_pieces", "Reshape", List.of(inventory[0],
        g.longs(base + "/A/pieces_shape", List.of(heads, (long) pieces, in / heads * rank))));
    String a = g.op(base + "/A/Reshape", "Reshape", List.of(
        g.op(base + "/A/MatMul", "MatMul", List.of(w, flatA)), g.longs(base + "/A/shape", List.of(in, (long) rank))));
    // B: [heads, pieces, r·width/heads] → [heads, 1, r·width/heads] → [heads, r, width/heads] → [r, heads, width/heads] → [r, width].
    String flatB = g.op(base + "/B/Reshape_pieces", "Reshape", List.of(inventory[1],
        g.longs(base + "/B/pieces_shape", List.of(heads, (long) pieces, rank * (width / heads)))));
    String mixedB = g.op(base + "/B/Reshape_heads", "Reshape", List.of(
        g.op(base + "/B/MatMul", "MatMul", List.of(w, flatB)),
        g.longs(base + "/B/heads_shape", List.of(heads, (long) rank, width / heads))));
    String b = g.op(base + "/B/Reshape", "Reshape", List.of(
        g.op(base + "/B/Transpose", "Transpose", List.of(mixedB), attr("perm", List.of(1L, 0L, 2L))),
        g.longs(base + "/B/shape", List.of((long) rank, width))));

    String down = g.op(base + "/MatMul_A", "MatMul", List.of(input.value(), a));
    String up = g.op(base + "/MatMul_B", "MatMul", List.of(down, b));
    String scaled = Bottlenecks.scaled(placement, base, up, spec.doubleOption("alpha") / rank * input.outputScale());
    return g.op(base + "/Add", "Add", List.of(value, scaled));
  }

  /** A piece inventory's A initialized as PEFT's: kaiming-uniform per {@code [in/heads, r]} block. */
  private static Placement.ParameterBuilder pieceA(Placement.ParameterBuilder a, long fanIn) {
    return a.init(Init.KAIMING_UNIFORM, fanIn);
  }

  /**
   * The inventory {A, B} shared by sites of {@code [in, out]}: one already added by an earlier site
   * (or an earlier declaration with the same rank, pieces and heads), else a new one named {@code
   * multi_head_routing.<in>x<out>} (then {@code _2}, {@code _3} … where a name is taken by
   * pieces of other shapes).
   */
  private static String[] sharedPieces(Placement placement, int rank, int pieces, long heads, long in, long out) {
    List<Long> shapeA = List.of(heads, (long) pieces, in / heads, (long) rank);
    List<Long> shapeB = List.of(heads, (long) pieces, (long) rank, out / heads);
    String stem = NAME + "." + in + "x" + out;
    for (int i = 1; ; i++) {
      String name = i == 1 ? stem : stem + "_" + i;
      String nameA = placement.sharedParameter(name + ".lora_A").name();
      Parameter existing = placement.parameters().stream().filter(p -> p.getName().equals(nameA)).findFirst().orElse(null);
      if (existing == null) {
        String a = pieceA(placement.sharedParameter(name + ".lora_A", heads, pieces, in / heads, rank), in / heads)
            .save(Placement.PEFT_PREFIX + name + ".lora_A").add();
        String b = placement.sharedParameter(name + ".lora_B", heads, pieces, rank, out / heads).init(Init.ZEROS, 0)
            .save(Placement.PEFT_PREFIX + name + ".lora_B").add();
        return new String[] {a, b};
      }
      if (existing.getShapeList().equals(shapeA)) {
        String nameB = nameA.substring(0, nameA.length() - "lora_A".length()) + "lora_B";
        Parameter b = placement.parameters().stream().filter(p -> p.getName().equals(nameB)).findFirst().orElseThrow();
        if (b.getShapeList().equals(shapeB)) {
          return new String[] {nameA, nameB};
        }
      }
    }
  }
}
