package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * Shape and dtype inference with symbolic dimensions. Besides types, it tracks the values of
 * small integer tensors that compute shapes (Shape → Gather → Unsqueeze → Concat → Reshape, as
 * torch exports emit them), so a Reshape's output has real symbolic dims such as {@code
 * [batch_size, sequence_length, 12, 32]}. Needs: a topologically sorted graph. Guarantees:
 * every value produced by a supported op has a type in {@link Graph#types()}; values of
 * unsupported ops get an unknown rank. Also finishes the import's opset normalization of
 * pre-13 Softmax/LogSoftmax (coerced 2-D), which needs ranks.
 */
public final class ShapeInference {
  private final Graph graph;
  /**
   * The largest rank a shape tensor of unknown values gives a result (Reshape to a shape of known
   * length); a longer one (a hostile host's [2^31]) leaves the rank unknown rather than allocating dims.
   */
  static final long MAX_RANK = 64;

  /** Known element values of 0-D/1-D integer tensors. */
  private final Map<String, List<Dim>> values = new HashMap<>();

  private ShapeInference(Graph graph) {
    this.graph = graph;
  }

  public static void run(Graph graph) {
    new ShapeInference(graph).infer();
  }

  private void infer() {
    graph.foldedValues().clear();
    for (var e : graph.initializers().entrySet()) {
      TensorProto t = e.getValue();
      if ((t.getDataType() == TensorType.INT64 || t.getDataType() == TensorType.INT32)
          && t.getDimsCount() <= 1
          && Tensors.elementCount(t) <= 64
          && !graph.externalInitializers().contains(e.getKey())) {
        values.put(e.getKey(), dims(Tensors.readLongs(t)));
      }
    }
    List<Node> nodes = new ArrayList<>(graph.nodes());
    for (Node n : nodes) {
      Node node = n;
      if (graph.sourceOpset() < 13
          && (n.opType().equals("Softmax") || n.opType().equals("LogSoftmax"))
          && n.domain().isEmpty()) {
        node = legacySoftmax(n);
        if (node == null) {
          continue;
        }
      }
      node = normalizeOpset18(node);
      List<TensorType> out = inferNode(node);
      for (int i = 0; i < node.outputs().size(); i++) {
        TensorType t = i < out.size() ? out.get(i) : null;
        if (t != null && !node.output(i).isEmpty()
            && (t.elemType() != 0 || !graph.types().containsKey(node.output(i)))) {
          // An op this pass does not know keeps whatever type the model declared for it.
          graph.types().put(node.output(i), t);
        }
      }
    }
    for (var e : values.entrySet()) {
      List<Long> known = constLongs(e.getKey());
      if (known != null) {
        graph.foldedValues().put(e.getKey(), known);
      }
    }
  }

  /**
   * Before opset 13, Softmax coerces its input to 2-D at {@code axis} (default 1). Where axis is
   * the last one this equals the new semantics; otherwise rewrite as Flatten → Softmax → Reshape.
   * Returns the node to infer, or null when it was replaced by new nodes (already inferred).
   */
  private @Nullable Node legacySoftmax(Node n) {
    TensorType in = type(n.input(0));
    long axis = n.attrInt("axis", 1);
    if (!in.hasRank()) {
      throw new IllegalStateException("rank of Softmax input unknown at " + n.name());
    }
    int rank = in.rank();
    if (axis < 0) {
      axis += rank;
    }
    Node modern = new Node(
        n.name(), n.opType(), n.domain(), n.inputs(), n.outputs(),
        Node.attrs(Node.attr("axis", (long) -1)));
    if (axis == rank - 1) {
      graph.replaceNode(n, modern);
      return modern;
    }
    // General case: flatten to 2-D, softmax over the last axis, reshape back.
    int at = graph.nodes().indexOf(n);
    graph.nodes().remove(at);
    String flat = graph.op(n.name() + "/flatten", "Flatten", List.of(n.input(0)), Node.attr("axis", axis));
    String shape = graph.op(n.name() + "/shape", "Shape", List.of(n.input(0)));
    List<String> soft = graph.add(n.name(), n.opType(), "", List.of(flat), 1,
        Node.attrs(Node.attr("axis", (long) -1)));
    graph.nodes().add(new Node(n.name() + "/reshape", "Reshape", "", List.of(soft.get(0), shape),
        n.outputs(), new TreeMap<>()));
    // Move the four new nodes to where the old one was.
    List<Node> added = new ArrayList<>(graph.nodes().subList(graph.nodes().size() - 4, graph.nodes().size()));
    graph.nodes().subList(graph.nodes().size() - 4, graph.nodes().size()).clear();
    graph.nodes().addAll(at, added);
    for (Node a : added) {
      List<TensorType> out = inferNode(a);
      graph.types().put(a.output(0), out.get(0));
    }
    return null;
  }

  private static List<Dim> dims(List<Long> longs) {
    List<Dim> d = new ArrayList<>();
    for (long v : longs) {
      d.add(Dim.of(v));
    }
    return d;
  }

  private TensorType type(String value) {
    TensorType t = graph.type(value);
    return t == null ? new TensorType(0, null) : t;
  }

  private @Nullable List<Long> constLongs(String value) {
    List<Dim> v = values.get(value);
    if (v == null) {
      return null;
    }
    List<Long> out = new ArrayList<>();
    for (Dim d : v) {
      if (!d.isKnown()) {
        return null;
      }
      out.add(d.size());
    }
    return out;
  }

  private static int axis(long axis, int rank) {
    return (int) (axis < 0 ? axis + rank : axis);
  }

  private List<TensorType> inferNode(Node n) {
    List<TensorType> r = new ArrayList<>();
    TensorType t = inferFirst(n);
    r.add(t);
    switch (n.opType()) {
      case "Dropout" -> r.add(t.withElemType(TensorType.BOOL));
      case "LayerNormalization", "SimplifiedLayerNormalization", FusedOps.LAYER_NORM -> {
        if (t.hasRank()) {
          int a = axis(n.attrInt("axis", -1), t.rank());
          List<Dim> s = new ArrayList<>(t.dims());
          for (int i = a; i < s.size(); i++) {
            s.set(i, Dim.of(1));
          }
          // Mean and InvStdDev have the stash type (float unless stated), not X's.
          TensorType stat = TensorType.of((int) n.attrInt("stash_type", TensorType.FLOAT), s);
          r.add(stat);
          if (!n.opType().equals("SimplifiedLayerNormalization")) {
            r.add(stat);
          }
        }
      }
      case "MaxPool" -> r.add(t.withElemType(TensorType.INT64));
      // The int8 hosts' activation quantization: y (uint8, x's shape), its scale and zero point (scalars).
      case "DynamicQuantizeLinear" -> {
        r.add(TensorType.of(TensorType.FLOAT));
        r.add(TensorType.of(TensorType.UINT8));
      }
      case "Split" -> {
        TensorType in = type(n.input(0));
        int count = n.outputs().size();
        int a = in.hasRank() ? axis(n.attrInt("axis", 0), in.rank()) : 0;
        List<Long> split = n.hasInput(1) ? constLongs(n.input(1)) : null;
        r.clear();
        for (int i = 0; i < count; i++) {
          if (!in.hasRank()) {
            r.add(in);
            continue;
          }
          List<Dim> s = new ArrayList<>(in.dims());
          Dim d = in.dim(a);
          s.set(a, split != null ? Dim.of(split.get(i))
              : d.isKnown() && d.size() % count == 0 ? Dim.of(d.size() / count) : Dim.unknown());
          r.add(TensorType.of(in.elemType(), s));
        }
      }
      default -> {}
    }
    return r;
  }

  private TensorType inferFirst(Node n) {
    String op = n.domain().isEmpty() || n.domain().equals("ai.onnx") ? n.opType()
        : n.domain().equals(Graph.MS_DOMAIN) ? "ms:" + n.opType() : n.domain() + ":" + n.opType();
    switch (op) {
      case "Constant": {
        TensorProto v = n.attrTensor("value");
        if (v != null) {
          if (v.getDataType() == TensorType.INT64 && v.getDimsCount() <= 1 && Tensors.elementCount(v) <= 64) {
            values.put(n.output(0), dims(Tensors.readLongs(v)));
          }
          return Tensors.typeOf(v);
        }
        if (n.has("value_float")) {
          return TensorType.of(TensorType.FLOAT);
        }
        if (n.has("value_int")) {
          values.put(n.output(0), List.of(Dim.of(n.attrInt("value_int", 0))));
          return TensorType.of(TensorType.INT64);
        }
        if (n.has("value_ints")) {
          List<Long> ints = n.attrInts("value_ints");
          values.put(n.output(0), dims(ints));
          return TensorType.of(TensorType.INT64, ints.size());
        }
        if (n.has("value_floats")) {
          return TensorType.of(TensorType.FLOAT, n.attributes().get("value_floats").getFloatsCount());
        }
        return new TensorType(0, null);
      }
      case "Shape": {
        TensorType in = type(n.input(0));
        if (!in.hasRank()) {
          return new TensorType(TensorType.INT64, List.of(Dim.unknown()));
        }
        int rank = in.rank();
        int start = axis(n.attrInt("start", 0), rank);
        int end = n.has("end") ? axis(n.attrInt("end", rank), rank) : rank;
        List<Dim> v = in.dims().subList(Math.max(0, start), Math.min(rank, end));
        values.put(n.output(0), new ArrayList<>(v));
        return TensorType.of(TensorType.INT64, v.size());
      }
      case Graph.GRAFT_DOMAIN + ":" + FusedOps.LAYER_NORM:
        return type(n.input(0));
      case Graph.GRAFT_DOMAIN + ":" + FusedOps.GELU_GRAD, Graph.GRAFT_DOMAIN + ":" + FusedOps.SOFTMAX_GRAD,
          Graph.GRAFT_DOMAIN + ":" + FusedOps.LAYER_NORM_GRAD:
        return type(n.input(1));
      case "Size":
        return TensorType.of(TensorType.INT64);
      case "Identity", "Dropout", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Erf",
          "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Sin", "Cos", "Softmax", "LogSoftmax",
          "Clip", "Gelu", "Floor", "Ceil", "Round", "Sign", "LayerNormalization", "SimplifiedLayerNormalization",
          "ScatterElements", "ScatterND", "Trilu", "EyeLike", "ms:Gelu", "ms:FastGelu",
          Graph.GRAFT_DOMAIN + ":" + Graph.STOP_GRADIENT,
          // Elementwise ops without a gradient rule: typed, so that autodiff names them (GRAFT030).
          "Softplus", "Softsign", "Elu", "Selu", "Celu", "Mish", "HardSigmoid", "HardSwish", "ThresholdedRelu",
          "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh": {
        TensorType in = type(n.input(0));
        if (op.equals("Identity") && values.containsKey(n.input(0))) {
          values.put(n.output(0), values.get(n.input(0)));
        }
        return in;
      }
      case "Not":
        return type(n.input(0)).withElemType(TensorType.BOOL);
      case "Cast": {
        TensorType in = type(n.input(0));
        if (values.containsKey(n.input(0))) {
          values.put(n.output(0), values.get(n.input(0)));
        }
        return in.withElemType((int) n.attrInt("to", 0));
      }
      case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod": {
        TensorType out = broadcast(n.inputs());
        if (n.inputs().size() == 2 && (op.equals("Add") || op.equals("Sub") || op.equals("Mul") || op.equals("Div"))) {
          foldArithmetic(n, op);
        }
        return out.withElemType(type(n.input(0)).elemType());
      }
      case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
        if (op.equals("Equal")) {
          foldEqual(n);
        }
        return broadcast(n.inputs()).withElemType(TensorType.BOOL);
      case "Where":
        foldWhere(n);
        return broadcast(n.inputs()).withElemType(type(n.input(1)).elemType());
      case "MatMul", "ms:FusedMatMul":
        return matmul(n);
      // Int8 hosts: MatMulInteger's int32 product, the quantize/dequantize pair around it.
      case "MatMulInteger":
        return matmul(n).withElemType(TensorType.INT32);
      case "ms:DynamicQuantizeMatMul":
        return matmul(n).withElemType(TensorType.FLOAT);
      case "DynamicQuantizeLinear":
        return type(n.input(0)).withElemType(TensorType.UINT8);
      case "QuantizeLinear":
        return type(n.input(0)).withElemType(n.hasInput(2) ? type(n.input(2)).elemType() : TensorType.UINT8);
      case "DequantizeLinear":
        return type(n.input(0)).withElemType(type(n.input(1)).elemType());
      case "Gemm": {
        TensorType a = type(n.input(0));
        TensorType b = type(n.input(1));
        Dim m = n.attrInt("transA", 0) == 1 ? a.dim(1) : a.dim(0);
        Dim k = n.attrInt("transB", 0) == 1 ? b.dim(0) : b.dim(1);
        return TensorType.of(a.elemType(), List.of(m, k));
      }
      case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL2":
        if (!op.equals("ReduceSum") && n.hasInput(1)) {
          // Opset-18 axes the import could not make an attribute (not constant): shape unknown.
          return type(n.input(0)).withShape(null);
        }
        return reduce(n, op.equals("ReduceSum") ? (n.hasInput(1) ? constLongs(n.input(1)) : null) : n.attrInts("axes"));
      case "ArgMax", "ArgMin": {
        TensorType in = type(n.input(0));
        List<Dim> s = new ArrayList<>(in.dims());
        int a = axis(n.attrInt("axis", 0), s.size());
        if (n.attrInt("keepdims", 1) == 1) {
          s.set(a, Dim.of(1));
        } else {
          s.remove(a);
        }
        return TensorType.of(TensorType.INT64, s);
      }
      case "Gather": {
        TensorType data = type(n.input(0));
        TensorType idx = type(n.input(1));
        if (!data.hasRank() || !idx.hasRank()) {
          return data.withShape(null);
        }
        int a = axis(n.attrInt("axis", 0), data.rank());
        List<Dim> s = new ArrayList<>(data.dims().subList(0, a));
        s.addAll(idx.dims());
        s.addAll(data.dims().subList(a + 1, data.rank()));
        List<Dim> v = values.get(n.input(0));
        List<Long> i = constLongs(n.input(1));
        if (v != null && i != null && data.rank() == 1) {
          List<Dim> picked = new ArrayList<>();
          for (long k : i) {
            picked.add(v.get((int) (k < 0 ? k + v.size() : k)));
          }
          values.put(n.output(0), picked);
        }
        return TensorType.of(data.elemType(), s);
      }
      case "GatherElements":
        return type(n.input(1)).withElemType(type(n.input(0)).elemType());
      case "Unsqueeze": {
        TensorType in = type(n.input(0));
        List<Long> axes = constLongs(n.input(1));
        if (axes == null || !in.hasRank()) {
          return in.withShape(null);
        }
        int rank = in.rank() + axes.size();
        List<Dim> s = new ArrayList<>();
        List<Integer> norm = axes.stream().map(a -> axis(a, rank)).sorted().toList();
        int j = 0;
        for (int i = 0; i < rank; i++) {
          s.add(norm.contains(i) ? Dim.of(1) : in.dim(j++));
        }
        if (values.containsKey(n.input(0)) && in.rank() == 0) {
          values.put(n.output(0), values.get(n.input(0)));
        }
        return TensorType.of(in.elemType(), s);
      }
      case "Squeeze": {
        TensorType in = type(n.input(0));
        if (!in.hasRank()) {
          return in;
        }
        List<Long> axes = n.hasInput(1) ? constLongs(n.input(1)) : null;
        List<Dim> s = new ArrayList<>();
        for (int i = 0; i < in.rank(); i++) {
          final int ii = i;
          boolean drop = axes == null ? in.dim(i).is(1)
              : axes.stream().anyMatch(a -> axis(a, in.rank()) == ii);
          if (!drop) {
            s.add(in.dim(i));
          }
        }
        if (values.containsKey(n.input(0)) && s.isEmpty()) {
          values.put(n.output(0), values.get(n.input(0)));
        }
        return TensorType.of(in.elemType(), s);
      }
      case "Concat": {
        TensorType first = type(n.input(0));
        if (!first.hasRank()) {
          return first;
        }
        int a = axis(n.attrInt("axis", 0), first.rank());
        List<Dim> s = new ArrayList<>(first.dims());
        List<Dim> parts = new ArrayList<>();
        List<Dim> vals = new ArrayList<>();
        boolean allValues = true;
        for (String in : n.inputs()) {
          TensorType t = type(in);
          parts.add(t.hasRank() ? t.dim(a) : Dim.unknown());
          List<Dim> v = values.get(in);
          if (v == null) {
            allValues = false;
          } else {
            vals.addAll(v);
          }
        }
        s.set(a, sum(parts));
        if (allValues && first.rank() == 1) {
          values.put(n.output(0), vals);
          s.set(0, Dim.of(vals.size()));
        }
        return TensorType.of(first.elemType(), s);
      }
      case "Reshape":
        return reshape(n);
      case "Flatten": {
        TensorType in = type(n.input(0));
        int a = axis(n.attrInt("axis", 1), in.rank());
        Dim left = Dim.of(1);
        Dim right = Dim.of(1);
        for (int i = 0; i < in.rank(); i++) {
          if (i < a) {
            left = left.times(in.dim(i));
          } else {
            right = right.times(in.dim(i));
          }
        }
        return TensorType.of(in.elemType(), List.of(left, right));
      }
      case "Transpose": {
        TensorType in = type(n.input(0));
        if (!in.hasRank()) {
          return in;
        }
        List<Long> perm = n.attrInts("perm");
        List<Dim> s = new ArrayList<>();
        for (int i = 0; i < in.rank(); i++) {
          s.add(in.dim(perm == null ? in.rank() - 1 - i : (int) (long) perm.get(i)));
        }
        return TensorType.of(in.elemType(), s);
      }
      case "Slice":
        return slice(n);
      case "Expand": {
        TensorType in = type(n.input(0));
        List<Dim> shape = values.get(n.input(1));
        if (shape == null || !in.hasRank()) {
          return in.withShape(null);
        }
        return TensorType.of(in.elemType(), broadcastDims(List.of(in.dims(), shape)));
      }
      case "ConstantOfShape": {
        TensorProto v = n.attrTensor("value");
        int et = v == null ? TensorType.FLOAT : v.getDataType();
        List<Dim> shape = values.get(n.input(0));
        List<Long> known = constLongs(n.input(0));
        if (v != null && et == TensorType.INT64 && known != null && known.size() == 1
            && known.get(0) >= 0 && known.get(0) <= 64) {
          long fill = Tensors.readLongs(v).get(0);
          values.put(n.output(0), dims(java.util.Collections.nCopies((int) (long) known.get(0), fill)));
        }
        return new TensorType(et, shape);
      }
      case "Range":
        return new TensorType(type(n.input(0)).elemType(), List.of(rangeLength(n)));
      case "Tile": {
        TensorType in = type(n.input(0));
        List<Long> reps = constLongs(n.input(1));
        if (!in.hasRank()) {
          return in;
        }
        List<Dim> s = new ArrayList<>();
        for (int i = 0; i < in.rank(); i++) {
          s.add(reps == null ? Dim.unknown() : in.dim(i).times(Dim.of(reps.get(i))));
        }
        return TensorType.of(in.elemType(), s);
      }
      case "Pad": {
        TensorType in = type(n.input(0));
        List<Long> pads = n.hasInput(1) ? constLongs(n.input(1)) : null;
        if (!in.hasRank()) {
          return in;
        }
        List<Dim> s = new ArrayList<>();
        for (int i = 0; i < in.rank(); i++) {
          Dim d = in.dim(i);
          s.add(pads != null && d.isKnown() ? Dim.of(d.size() + pads.get(i) + pads.get(i + in.rank())) : Dim.unknown());
        }
        return TensorType.of(in.elemType(), s);
      }
      case "OneHot": {
        TensorType idx = type(n.input(0));
        List<Long> depth = constLongs(n.input(1));
        List<Dim> s = new ArrayList<>(idx.dims());
        int a = axis(n.attrInt("axis", -1), idx.rank() + 1);
        s.add(a, depth == null ? Dim.unknown() : Dim.of(depth.get(0)));
        return TensorType.of(type(n.input(2)).elemType(), s);
      }
      case "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization":
        return ConvGeometry.infer(n, n.inputs().stream().map(this::type).toList());
      // ---- Breadth ops (issue 3) ----
      case "Einsum":
        return einsum(n);
      case "CastLike":
        return type(n.input(0)).withElemType(type(n.input(1)).elemType());
      case "Compress": {
        TensorType in = type(n.input(0));
        return in.hasRank() && in.rank() == 1 ? TensorType.of(in.elemType(), List.of(Dim.unknown())) : in.withShape(null);
      }
      case "IsNaN", "IsInf":
        return type(n.input(0)).withElemType(TensorType.BOOL);
      default:
        return new TensorType(0, null);
    }
  }

  /**
   * The sum of dims, as a Concat along them gives: a size when all are known; else, when every
   * one is a size or a symbol, the symbol naming the sum in one canonical spelling (symbolic terms
   * sorted, then the constant: {@code sequence_length+20}), so that two sums of the same terms are
   * the same dimension (a sequence extended by virtual tokens stays one symbol through the
   * graph); unknown otherwise.
   */
  public static Dim sum(List<Dim> dims) {
    long constant = 0;
    List<String> terms = new ArrayList<>();
    for (Dim d : dims) {
      if (d.isKnown()) {
        constant += d.size();
      } else if (d.isSymbol()) {
        for (String term : d.symbolName().split("\\+", -1)) {
          if (term.matches("\\d{1,18}")) {
            constant += Long.parseLong(term);
          } else {
            terms.add(term);
          }
        }
      } else {
        return Dim.unknown();
      }
    }
    if (terms.isEmpty()) {
      return Dim.of(constant);
    }
    java.util.Collections.sort(terms);
    return Dim.symbol(String.join("+", terms) + (constant == 0 ? "" : "+" + constant));
  }

  /** Integer arithmetic on tracked shape values (e.g. head_dim = hidden / heads). */
  private void foldArithmetic(Node n, String op) {
    List<Dim> a = values.get(n.input(0));
    List<Dim> b = values.get(n.input(1));
    if (a == null || b == null || (a.size() != b.size() && a.size() != 1 && b.size() != 1)) {
      return;
    }
    int len = Math.max(a.size(), b.size());
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < len; i++) {
      Dim x = a.get(a.size() == 1 ? 0 : i);
      Dim y = b.get(b.size() == 1 ? 0 : i);
      if (!x.isKnown() || !y.isKnown()) {
        out.add(symbolic(op, x, y));
        continue;
      }
      try {
        long r = switch (op) {
          case "Add" -> Math.addExact(x.size(), y.size());
          case "Sub" -> Math.subtractExact(x.size(), y.size());
          case "Mul" -> Math.multiplyExact(x.size(), y.size());
          default -> y.size() == 0 ? 0 : x.size() / y.size();
        };
        out.add(Dim.of(r));
      } catch (ArithmeticException overflow) {
        out.add(Dim.unknown());
      }
    }
    values.put(n.output(0), out);
  }

  /**
   * Arithmetic on a symbolic dim: products ({@code batch*sequence}), quotients by one of their
   * factors, {@code s − s = 0}, {@code s + k} as a sum symbol; unknown otherwise.
   */
  private static Dim symbolic(String op, Dim x, Dim y) {
    switch (op) {
      case "Mul":
        return x.times(y);
      case "Div": {
        if (y.is(1)) {
          return x;
        }
        List<String> fx = new ArrayList<>(Dim.factors(x));
        List<String> fy = Dim.factors(y);
        if (!fy.isEmpty() && fx.size() > fy.size() && fx.containsAll(fy)) {
          fy.forEach(fx::remove);
          return Dim.product(fx, List.of());
        }
        return x.sameAs(y) && x.isSymbol() ? Dim.of(1) : Dim.unknown();
      }
      case "Sub":
        if (x.sameAs(y) && x.isSymbol()) {
          return Dim.of(0);
        }
        return y.is(0) ? x : Dim.unknown();
      case "Add":
        return plainTerm(x) && plainTerm(y) ? sum(List.of(x, y)) : Dim.unknown();
      default:
        return Dim.unknown();
    }
  }

  /** A size ≥ 0 or a symbol that is no product: what {@link #sum} may add. */
  private static boolean plainTerm(Dim d) {
    return d.isKnown() ? d.size() >= 0 : d.isSymbol() && !d.symbolName().contains("*");
  }

  /**
   * Equal on tracked shape values: equal sizes or the same symbol are equal; a symbolic dim (a
   * size, never negative) is unequal to a negative constant, as torch's {@code expand(-1)}
   * pattern {@code Where(Equal(shape, -1), 1, shape)} asks.
   */
  private void foldEqual(Node n) {
    List<Dim> a = values.get(n.input(0));
    List<Dim> b = values.get(n.input(1));
    if (a == null || b == null || (a.size() != b.size() && a.size() != 1 && b.size() != 1)) {
      return;
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < Math.max(a.size(), b.size()); i++) {
      Dim x = a.get(a.size() == 1 ? 0 : i);
      Dim y = b.get(b.size() == 1 ? 0 : i);
      if (x.isKnown() && y.isKnown()) {
        out.add(Dim.of(x.size() == y.size() ? 1 : 0));
      } else if (x.sameAs(y) && x.isSymbol()) {
        out.add(Dim.of(1));
      } else if ((x.isSymbol() && y.isKnown() && y.size() < 0) || (y.isSymbol() && x.isKnown() && x.size() < 0)) {
        out.add(Dim.of(0));
      } else {
        return;
      }
    }
    values.put(n.output(0), out);
  }

  /** Where on tracked values with a known condition picks each element from the tracked branches. */
  private void foldWhere(Node n) {
    List<Long> cond = constLongs(n.input(0));
    List<Dim> x = values.get(n.input(1));
    List<Dim> y = values.get(n.input(2));
    if (cond == null || x == null || y == null) {
      return;
    }
    int len = Math.max(cond.size(), Math.max(x.size(), y.size()));
    for (List<?> l : List.of(cond, x, y)) {
      if (l.size() != len && l.size() != 1) {
        return;
      }
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < len; i++) {
      boolean c = cond.get(cond.size() == 1 ? 0 : i) != 0;
      out.add(c ? x.get(x.size() == 1 ? 0 : i) : y.get(y.size() == 1 ? 0 : i));
    }
    values.put(n.output(0), out);
  }

  /** A tracked value, or the integral value of a float scalar Constant (a float Range's start and delta). */
  private @Nullable List<Dim> rangeOperand(String value) {
    List<Dim> v = values.get(value);
    if (v != null) {
      return v;
    }
    Node p = graph.producer(value);
    TensorProto t = p != null && p.opType().equals("Constant") ? p.attrTensor("value") : graph.initializers().get(value);
    if (t == null || graph.externalInitializers().contains(value) || !(t.getDataType() == TensorType.FLOAT
        || t.getDataType() == TensorType.DOUBLE) || Tensors.elementCount(t) != 1) {
      return null;
    }
    double d = Tensors.readDoubles(t)[0];
    return d == Math.rint(d) && Math.abs(d) < 1e15 ? List.of(Dim.of((long) d)) : null;
  }

  /** Range's length: {@code limit} for {@code Range(0, limit, 1)}, symbolic or not; computed when all three are known. */
  private Dim rangeLength(Node n) {
    List<Dim> start = rangeOperand(n.input(0));
    List<Dim> limit = values.get(n.input(1));
    List<Dim> delta = rangeOperand(n.input(2));
    if (start == null || limit == null || delta == null || start.size() != 1 || limit.size() != 1 || delta.size() != 1) {
      return Dim.unknown();
    }
    Dim s = start.get(0);
    Dim l = limit.get(0);
    Dim d = delta.get(0);
    if (s.isKnown() && l.isKnown() && d.isKnown() && d.size() != 0) {
      long count = (long) Math.ceil((double) (l.size() - s.size()) / d.size());
      return Dim.of(Math.max(0, count));
    }
    return s.is(0) && d.is(1) && l.isSymbol() ? l : Dim.unknown();
  }

  private TensorType broadcast(List<String> inputs) {
    List<List<Dim>> shapes = new ArrayList<>();
    int et = 0;
    for (String in : inputs) {
      if (in.isEmpty()) {
        continue;
      }
      TensorType t = type(in);
      et = et == 0 ? t.elemType() : et;
      if (!t.hasRank()) {
        return new TensorType(et, null);
      }
      shapes.add(t.dims());
    }
    return new TensorType(et, broadcastDims(shapes));
  }

  /** Numpy broadcasting of shapes, preferring known sizes, then symbols. */
  public static List<Dim> broadcastDims(List<List<Dim>> shapes) {
    int rank = shapes.stream().mapToInt(List::size).max().orElse(0);
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < rank; i++) {
      Dim best = null;
      for (List<Dim> s : shapes) {
        int j = i - (rank - s.size());
        if (j < 0) {
          continue;
        }
        Dim d = s.get(j);
        if (best == null || best.is(1) || (!best.isKnown() && d.isKnown() && !d.is(1))
            || (!best.isKnown() && !best.isSymbol() && d.isSymbol())) {
          best = d;
        }
      }
      out.add(best == null ? Dim.unknown() : best);
    }
    return out;
  }

  private TensorType matmul(Node n) {
    TensorType a = type(n.input(0));
    TensorType b = type(n.input(1));
    if (!a.hasRank() || !b.hasRank()) {
      return a.withShape(null);
    }
    List<Dim> as = new ArrayList<>(a.dims());
    List<Dim> bs = new ArrayList<>(b.dims());
    if (n.domain().equals(Graph.MS_DOMAIN)) {
      if (n.attrInt("transA", 0) == 1) {
        java.util.Collections.swap(as, as.size() - 1, as.size() - 2);
      }
      if (n.attrInt("transB", 0) == 1) {
        java.util.Collections.swap(bs, bs.size() - 1, bs.size() - 2);
      }
    }
    boolean aVec = as.size() == 1;
    boolean bVec = bs.size() == 1;
    if (aVec) {
      as.add(0, Dim.of(1));
    }
    if (bVec) {
      bs.add(Dim.of(1));
    }
    List<Dim> batch = broadcastDims(List.of(as.subList(0, as.size() - 2), bs.subList(0, bs.size() - 2)));
    List<Dim> s = new ArrayList<>(batch);
    if (!aVec) {
      s.add(as.get(as.size() - 2));
    }
    if (!bVec) {
      s.add(bs.get(bs.size() - 1));
    }
    return TensorType.of(a.elemType(), s);
  }

  private TensorType reduce(Node n, @Nullable List<Long> axes) {
    TensorType in = type(n.input(0));
    if (!in.hasRank()) {
      return in;
    }
    boolean keep = n.attrInt("keepdims", 1) == 1;
    boolean all = axes == null || axes.isEmpty();
    if (all && n.attrInt("noop_with_empty_axes", 0) == 1 && n.opType().equals("ReduceSum")) {
      return in;
    }
    if (axes == null && n.hasInput(1) && n.opType().equals("ReduceSum")) {
      return in.withShape(null);
    }
    List<Dim> s = new ArrayList<>();
    for (int i = 0; i < in.rank(); i++) {
      final int ii = i;
      boolean reduced = all || axes.stream().anyMatch(a -> axis(a, in.rank()) == ii);
      if (!reduced) {
        s.add(in.dim(i));
      } else if (keep) {
        s.add(Dim.of(1));
      }
    }
    return TensorType.of(in.elemType(), s);
  }

  private TensorType reshape(Node n) {
    TensorType in = type(n.input(0));
    List<Dim> target = values.get(n.input(1));
    if (target == null) {
      TensorType st = type(n.input(1));
      if (st.hasRank() && st.rank() == 1 && st.dim(0).isKnown() && st.dim(0).size() <= MAX_RANK) {
        List<Dim> s = new ArrayList<>();
        for (int i = 0; i < st.dim(0).size(); i++) {
          s.add(Dim.unknown());
        }
        return TensorType.of(in.elemType(), s);
      }
      return in.withShape(null);
    }
    boolean allowZero = n.attrInt("allowzero", 0) == 1;
    List<Dim> out = new ArrayList<>();
    int inferAt = -1;
    for (int i = 0; i < target.size(); i++) {
      Dim d = target.get(i);
      if (d.is(0) && !allowZero && in.hasRank()) {
        out.add(in.dim(i));
      } else if (d.is(-1)) {
        inferAt = i;
        out.add(Dim.unknown());
      } else {
        out.add(d);
      }
    }
    if (inferAt >= 0 && in.hasRank()) {
      out.set(inferAt, quotient(in.dims(), out, inferAt));
    }
    if (values.containsKey(n.input(0))) {
      values.put(n.output(0), values.get(n.input(0)));
    }
    return TensorType.of(in.elemType(), out);
  }

  /** The dim that makes {@code product(out) == product(in)}, cancelling symbols. */
  private static Dim quotient(List<Dim> in, List<Dim> out, int skip) {
    List<String> symbols = new ArrayList<>();
    long numeric = 1;
    for (Dim d : in) {
      if (d.isKnown()) {
        numeric *= d.size();
      } else if (d.isSymbol()) {
        symbols.addAll(Dim.factors(d));
      } else {
        return Dim.unknown();
      }
    }
    long divisor = 1;
    for (int i = 0; i < out.size(); i++) {
      if (i == skip) {
        continue;
      }
      Dim d = out.get(i);
      if (d.isKnown()) {
        divisor *= d.size();
      } else if (d.isSymbol() && symbols.containsAll(Dim.factors(d))) {
        Dim.factors(d).forEach(symbols::remove);
      } else {
        return Dim.unknown();
      }
    }
    if (divisor == 0 || numeric % divisor != 0) {
      return Dim.unknown();
    }
    long q = numeric / divisor;
    if (symbols.isEmpty()) {
      return Dim.of(q);
    }
    return q == 1 ? Dim.product(symbols, List.of()) : Dim.unknown();
  }

  private TensorType slice(Node n) {
    TensorType in = type(n.input(0));
    if (!in.hasRank()) {
      return in;
    }
    List<Dim> starts = values.get(n.input(1));
    List<Dim> ends = values.get(n.input(2));
    List<Long> axes = n.hasInput(3) ? constLongs(n.input(3)) : null;
    List<Long> steps = n.hasInput(4) ? constLongs(n.input(4)) : null;
    List<Dim> s = new ArrayList<>(in.dims());
    if (starts == null || ends == null || (n.hasInput(3) && axes == null) || (n.hasInput(4) && steps == null)) {
      int count = starts != null ? starts.size() : -1;
      for (int i = 0; i < s.size(); i++) {
        final int ii = i;
        if (axes == null || axes.stream().anyMatch(a -> axis(a, in.rank()) == ii)) {
          s.set(i, Dim.unknown());
        }
      }
      return TensorType.of(in.elemType(), s);
    }
    List<Dim> sliced = values.get(n.input(0));
    for (int k = 0; k < starts.size(); k++) {
      int a = axes == null ? k : axis(axes.get(k), in.rank());
      long step = steps == null ? 1 : steps.get(k);
      Dim start = starts.get(k);
      Dim end = ends.get(k);
      Dim size = in.dim(a);
      if (size.isKnown() && start.isKnown() && end.isKnown()) {
        long len = size.size();
        long st = clamp(start.size(), len, step > 0);
        long en = clamp(end.size(), len, step > 0);
        long count = step > 0 ? Math.max(0, (en - st + step - 1) / step) : Math.max(0, (st - en + (-step) - 1) / (-step));
        s.set(a, Dim.of(count));
        if (sliced != null && in.rank() == 1 && step == 1) {
          values.put(n.output(0), new ArrayList<>(sliced.subList((int) st, (int) Math.max(st, en))));
        }
      } else if (step == 1 && start.is(0) && end.isSymbol()) {
        s.set(a, end);
      } else if (step == 1 && start.is(0) && end.isKnown() && end.size() >= Integer.MAX_VALUE) {
        s.set(a, size);
      } else {
        s.set(a, Dim.unknown());
      }
    }
    return TensorType.of(in.elemType(), s);
  }

  private static long clamp(long v, long len, boolean forward) {
    if (v < 0) {
      v += len;
    }
    return forward ? Math.max(0, Math.min(len, v)) : Math.max(-1, Math.min(len - 1, v));
  }

  // ---- Breadth ops (issue 3) ---------------------------------------------------------------

  /**
   * Finishes the import's normalization of opset-18 forms that need ranks or sizes: Pad's
   * {@code axes} input folded into full-rank pads, Split's {@code num_outputs} turned into
   * explicit sizes (ceil(d/n) each, the last one smaller). Returns the node to infer.
   */
  private Node normalizeOpset18(Node n) {
    if (!n.domain().isEmpty()) {
      return n;
    }
    if (n.opType().equals("Pad") && n.hasInput(3)) {
      TensorType in = type(n.input(0));
      List<Long> pads = constLongs(n.input(1));
      List<Long> axes = constLongs(n.input(3));
      if (!in.hasRank() || pads == null || axes == null || pads.size() != 2 * axes.size()) {
        throw new IllegalStateException("Pad with axes needs a known rank and constant pads and axes at node '"
            + n.name() + "'");
      }
      int rank = in.rank();
      List<Long> full = new ArrayList<>(java.util.Collections.nCopies(2 * rank, 0L));
      for (int k = 0; k < axes.size(); k++) {
        int a = axis(axes.get(k), rank);
        full.set(a, pads.get(k));
        full.set(a + rank, pads.get(k + axes.size()));
      }
      String padsFull = graph.longs(n.name() + "/pads", full);
      values.put(padsFull, dims(full));
      Node replaced = new Node(n.name(), n.opType(), n.domain(),
          n.hasInput(2) ? List.of(n.input(0), padsFull, n.input(2)) : List.of(n.input(0), padsFull),
          n.outputs(), n.attributes());
      graph.replaceNode(n, replaced);
      return replaced;
    }
    if (n.opType().equals("Split") && n.has("num_outputs")) {
      TensorType in = type(n.input(0));
      long parts = n.attrInt("num_outputs", 1);
      Node replaced = n.withoutAttribute("num_outputs");
      if (!in.hasRank()) {
        throw new IllegalStateException("Split with num_outputs needs a known rank at node '" + n.name() + "'");
      }
      Dim d = in.dim(axis(n.attrInt("axis", 0), in.rank()));
      if (!(d.isKnown() && d.size() % parts == 0)) {
        if (!d.isKnown()) {
          throw new IllegalStateException("Split with num_outputs of an uneven or unknown-size axis at node '"
              + n.name() + "' needs a fixed size, got " + d);
        }
        long chunk = (d.size() + parts - 1) / parts;
        List<Long> sizes = new ArrayList<>();
        for (long left = d.size(); left > 0; left -= chunk) {
          sizes.add(Math.min(chunk, left));
        }
        String split = graph.longs(n.name() + "/split", sizes);
        values.put(split, dims(sizes));
        replaced = replaced.withInput(1, split);
      }
      graph.replaceNode(n, replaced);
      return replaced;
    }
    return n;
  }

  /** Einsum without ellipsis: each output index takes the dim of that index in an operand. */
  private TensorType einsum(Node n) {
    String eq = n.attrString("equation");
    int et = type(n.input(0)).elemType();
    if (eq == null || eq.contains(".")) {
      // Ellipsis: not inferred; unknown, so a type the model declares is kept.
      return new TensorType(0, null);
    }
    String e = eq.replace(" ", "");
    String[] sides = e.split("->", -1);
    String[] terms = sides[0].split(",", -1);
    Map<Character, Dim> dimOf = new HashMap<>();
    StringBuilder all = new StringBuilder();
    for (int i = 0; i < terms.length && i < n.inputs().size(); i++) {
      TensorType t = type(n.input(i));
      if (!t.hasRank() || t.rank() != terms[i].length()) {
        return new TensorType(et, null);
      }
      for (int k = 0; k < terms[i].length(); k++) {
        Dim d = t.dim(k);
        Dim seen = dimOf.get(terms[i].charAt(k));
        if (seen == null || (!seen.isKnown() && d.isKnown()) || (!seen.isKnown() && !seen.isSymbol() && d.isSymbol())) {
          dimOf.put(terms[i].charAt(k), d);
        }
      }
      all.append(terms[i]);
    }
    String out;
    if (sides.length == 2) {
      out = sides[1];
    } else {
      StringBuilder o = new StringBuilder();
      String a = all.toString();
      a.chars().distinct().sorted().filter(ch -> a.indexOf(ch) == a.lastIndexOf(ch)).forEach(ch -> o.append((char) ch));
      out = o.toString();
    }
    List<Dim> s = new ArrayList<>();
    for (char ch : out.toCharArray()) {
      s.add(dimOf.getOrDefault(ch, Dim.unknown()));
    }
    return TensorType.of(et, s);
  }
}
