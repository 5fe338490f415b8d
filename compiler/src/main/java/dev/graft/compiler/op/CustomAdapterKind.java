package dev.graft.compiler.op;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An adapter kind a team defines itself: an adapter {@code v ↦ f(x, v)} on a linear layer {@code
 * v = x·W + b}, written with the op DSL in one method, {@link #define}. A subclass gives what
 * every kind gives ({@link #id}, {@link #displayName}, {@link #annotation}, {@link #options}, and
 * where it goes by default, {@link #defaultTarget}); this class places it: its parameters as
 * {@code <module path>.<id>.<name>}, its nodes beside the host's linear node ({@code
 * /encoder/layer.0/attention/self/query/<id>/MatMul}), at every site
 * alone or inside a composition block ({@link #apply}).
 *
 * <pre>{@code
 * public final class GatedLoraKind extends CustomAdapterKind {
 *   public String id() { return "gated_lora"; }
 *   public String displayName() { return "Gated LoRA"; }
 *   public String annotation() { return "com.example.GatedLora"; }
 *   public List<AdapterOption> options() {
 *     return List.of(AdapterOption.integer("rank", 8, 1, 4096, "rank of the update"));
 *   }
 *   protected Tensor define(Definition d) {
 *     Param a = d.param("A", d.inWidth(), d.option("rank")).kaimingUniform();
 *     Param b = d.param("B", d.option("rank"), d.outWidth());
 *     Param gate = d.param("gate", d.outWidth()).noDecay();
 *     return d.value().plus(d.input().matmul(a).matmul(b).times(gate.sigmoid()));
 *   }
 * }
 * }</pre>
 *
 * <p>Faults of a definition are found before anything is placed: {@link #diagnose} runs the
 * definition at every site of a declaration and reports each fault (GRAFT090–GRAFT093) on the
 * declaration. A kind is found by the compiler when {@link dev.graft.compiler.kinds.AdapterKinds}
 * loads it as a {@code java.util.ServiceLoader} service of {@link
 * dev.graft.compiler.kinds.AdapterKind}; it must have a public no-argument constructor.
 */
public abstract class CustomAdapterKind implements ComposableKind {
  /**
   * The adapted value at one site: an expression of {@code d}'s input, value, parameters and
   * constants, of the value's shape. Called once per site for each graph variant (inference, training)
   * and once more per site to check the declaration; it must declare the same parameters every
   * time and have no other effect.
   */
  protected abstract Tensor define(Definition d);

  /**
   * Every fault of the definition at the declaration's sites (GRAFT090–GRAFT093), each reported
   * once, at the first site that shows it.
   */
  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    Set<String> seen = new LinkedHashSet<>();
    List<Diagnostic> out = new ArrayList<>();
    for (Site site : sites) {
      try {
        List<Dim> shape = inputShape(graph, site);
        long width = ComposableKind.siteWidth(site);
        Definition inference = defined(spec, site, shape, width, GraphVariant.INFERENCE).definition();
        Definition training = defined(spec, site, shape, width, GraphVariant.TRAIN).definition();
        if (!signature(inference).equals(signature(training))) {
          throw inference.invalid("the parameters declared must not depend on training(); inference declares "
              + signature(inference) + ", training " + signature(training));
        }
      } catch (DefinitionException e) {
        // One fault of the definition, however many sites show it.
        if (seen.add(e.code() + e.getMessage().replace(site.modulePath(), ""))) {
          out.add(e.diagnostic(spec.source()));
        }
      }
    }
    return out;
  }

  /**
   * Places the definition at {@code site} as a function of {@code value}. A fault the declaration
   * check could not see (a composition giving another width) is thrown as a {@link
   * GraftCompileException}.
   */
  @Override
  public final String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    Graph g = placement.graph();
    Defined d;
    try {
      d = defined(spec, site, inputShape(g, site), width, placement.variant());
    } catch (DefinitionException e) {
      throw new GraftCompileException(List.of(e.diagnostic(spec.source())));
    }
    return new Emitter(placement, site, value).emit(d);
  }

  /** Runs {@link #define} and checks its result: the value's shape, and every parameter used. */
  private Defined defined(AdapterSpec spec, Site site, List<Dim> inputShape, long width, GraphVariant variant) {
    Definition d = new Definition(this, spec, site, inputShape, width, variant);
    Tensor result;
    try {
      result = define(d);
    } catch (DefinitionException e) {
      throw e;
    } catch (RuntimeException e) {
      throw d.invalid("define threw " + e);
    }
    if (result == null) {
      throw d.invalid("define returned null; it must return the adapted value");
    }
    d.own(result);
    List<Dim> want = d.value().shape();
    boolean fits = result.rank() == want.size();
    for (int i = 0; fits && i < want.size(); i++) {
      fits = Tensor.compatible(result.shape().get(i), want.get(i));
    }
    if (!fits || !result.shape().get(want.size() - 1).is(width)) {
      throw d.invalid("define must return the adapted value, of the value's shape " + want + ", got " + result.shape());
    }
    Set<Tensor> used = reachable(result);
    for (Param p : d.params()) {
      if (!used.contains(p)) {
        throw d.invalid("parameter '" + p.name() + "' is declared but the result does not use it");
      }
    }
    return new Defined(d, result);
  }

  /** A definition at one site and the adapted value it returned (checked). */
  private record Defined(Definition definition, Tensor result) {}

  private static List<String> signature(Definition d) {
    return d.params().stream().map(p -> p.name() + p.shape()).toList();
  }

  private static Set<Tensor> reachable(Tensor root) {
    Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    Deque<Tensor> todo = new ArrayDeque<>(List.of(root));
    while (!todo.isEmpty()) {
      Tensor t = todo.pop();
      if (seen.add(t)) {
        todo.addAll(t.operands);
      }
    }
    return seen;
  }

  /** The host's linear node of a site (a {@code LinearSite} or {@code OutputSite}). */
  private static Node linear(Graph graph, Site site) {
    return graph.nodes().stream().filter(n -> n.name().equals(site.node())).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("no node '" + site.node() + "' for " + site));
  }

  /**
   * The shape of the layer's input x: its output's shape (a host value, so typed whatever other
   * adapters rewired) with the last axis the weight's input width.
   */
  private static List<Dim> inputShape(Graph graph, Site site) {
    Node n = linear(graph, site);
    TensorType y = graph.type(n.output(0));
    LinearSite linear = LinearSite.at(graph, n);
    if (y == null || !y.hasRank() || y.rank() < 1 || linear == null) {
      throw new IllegalArgumentException("a custom adapter's site is a linear layer with a typed output and a 2-D"
          + " weight, got " + site + " with output " + y);
    }
    List<Dim> shape = new ArrayList<>(y.dims().subList(0, y.rank() - 1));
    shape.add(Dim.of(linear.in()));
    return shape;
  }

  /** Adds one definition's parameters and nodes to a placement; each expression once. */
  private final class Emitter {
    private final Placement placement;
    private final Graph graph;
    private final Site site;
    private final String value;
    private final String base;
    private final Map<Tensor, String> names = new IdentityHashMap<>();

    Emitter(Placement placement, Site site, String value) {
      this.placement = placement;
      this.graph = placement.graph();
      this.site = site;
      this.value = value;
      String node = site.node();
      this.base = node.substring(0, Math.max(0, node.lastIndexOf('/'))) + "/" + id();
    }

    String emit(Defined d) {
      for (Param p : d.definition().params()) {
        long[] shape = p.shape().stream().mapToLong(Dim::size).toArray();
        Placement.ParameterBuilder b = placement.parameter(site, id() + "." + p.name(), shape)
            .role(ParameterRole.ADAPTER).init(p.initKind(), p.initScale());
        if (p.isNoDecay()) {
          b.noDecay();
        }
        String key = Placement.peftKey(site, p.saveKey() == null ? id() + "." + p.name() : p.saveKey());
        if (p.isSaveTransposed()) {
          b.saveTransposed(key);
        } else {
          b.save(key);
        }
        names.put(p, b.add());
      }
      return emit(d.result());
    }

    private String emit(Tensor t) {
      String done = names.get(t);
      if (done != null) {
        return done;
      }
      String out = switch (t.source) {
        case INPUT -> input();
        case VALUE -> value;
        case CONSTANT -> placement.scalar(base + "/constant", t.constant);
        case INDICES -> graph.longs(base + "/indices", t.indices);
        case OP -> op(t);
        case PARAM -> throw new IllegalStateException("parameter " + t + " was not declared before use");
      };
      names.put(t, out);
      return out;
    }

    private String op(Tensor t) {
      List<String> in = new ArrayList<>();
      for (Tensor operand : t.operands) {
        in.add(emit(operand));
      }
      if (t.op.equals("Dropout")) {
        if (!placement.variant().trains()) {
          return in.get(0);
        }
        String ratio = placement.scalar(base + "/dropout_ratio", t.constant);
        String mode = graph.constant(base + "/training_mode", TensorProto.newBuilder().setDataType(TensorType.BOOL)
            .setRawData(com.google.protobuf.ByteString.copyFrom(new byte[] {1})).build());
        return graph.add(base + "/Dropout", "Dropout", "", List.of(in.get(0), ratio, mode), 2, Node.attrs()).get(0);
      }
      if (t.op.equals(Graph.STOP_GRADIENT)) {
        return graph.stopGradient(base + "/" + t.op, in.get(0));
      }
      return graph.add(base + "/" + t.op, t.op, "", in, 1, Node.attrs(t.attributes.toArray(new AttributeProto[0])))
          .get(0);
    }

    /**
     * The layer's input x, transposed for a Gemm with {@code transA=1}; of an int8 layer the float
     * x its activation quantization reads.
     */
    private String input() {
      Node n = linear(graph, site);
      String x = n.input(0);
      if (n.opType().equals("MatMulInteger")) {
        x = java.util.Objects.requireNonNull(graph.producer(x), "the quantization of " + x).input(0);
      }
      if (n.opType().equals("Gemm") && n.attrInt("transA", 0) == 1) {
        x = graph.op(base + "/input/Transpose", "Transpose", List.of(x), Node.attr("perm", List.of(1L, 0L)));
      }
      return x;
    }
  }
}
