package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import org.jspecify.annotations.Nullable;
import java.util.ArrayList;
import java.util.List;

/**
 * What a {@link GradientRule} writes with: node emission into the backward part of the graph,
 * typed constants, and the broadcasting reduction every elementwise rule needs. One instance
 * per forward node being differentiated.
 */
public final class Grad {
  private final Graph graph;
  private final Node node;
  private final boolean[] needs;
  private final Int8Backward int8Backward;
  private final List<String> integerProducts;

  Grad(Graph graph, Node node, boolean[] needs) {
    this(graph, node, needs, Int8Backward.DEQUANTIZED, new ArrayList<>());
  }

  /**
   * @param integerProducts receives the name of each node whose backward product this emitter
   *     makes integer ({@link #integerProduct})
   */
  Grad(Graph graph, Node node, boolean[] needs, Int8Backward int8Backward, List<String> integerProducts) {
    this.graph = graph;
    this.node = node;
    this.needs = needs;
    this.int8Backward = int8Backward;
    this.integerProducts = integerProducts;
  }

  /** How the backward multiplies by frozen weights ({@link Int8Backward}). */
  public Int8Backward int8Backward() {
    return int8Backward;
  }

  /** Whether {@code value} is a float32 matrix initializer: a frozen weight (parameters are graph inputs). */
  public boolean isFrozenMatrix(String value) {
    TensorProto t = graph.initializers().get(value);
    return t != null && t.getDataType() == TensorType.FLOAT && t.getDimsCount() == 2;
  }

  /**
   * {@code g · wᵀ} for a frozen float32 weight {@code w [in, out]} in integer arithmetic: {@code
   * wᵀ} quantized to int8, symmetric per column (its scale {@code max_o |w[i, o]| / 127} for
   * column i, at least the smallest normal float), by nodes on constants only, which ONNX Runtime
   * folds at load; then one {@code com.microsoft:DynamicQuantizeMatMul}, which quantizes g per
   * tensor to uint8. Records the node as one whose product is integer.
   */
  public String integerProduct(String g, String w) {
    String transposed = op("Transpose", List.of(w), Node.attr("perm", List.of(1L, 0L)));
    String max = op("ReduceMax", List.of(op("Abs", List.of(transposed))), Node.attr("axes", List.of(0L)),
        Node.attr("keepdims", 0L));
    String scale = op("Max", List.of(op("Div", List.of(max, scalar(127, w))), scalar(Float.MIN_NORMAL, w)));
    long in = graph.initializers().get(w).getDims(0);
    String zero = graph.constant(name("zero_point"), TensorProto.newBuilder().setDataType(TensorType.INT8).addDims(in)
        .setRawData(com.google.protobuf.ByteString.copyFrom(new byte[Math.toIntExact(in)])).build());
    String quantized = op("QuantizeLinear", List.of(transposed, scale, zero), Node.attr("axis", 1L));
    integerProducts.add(node.name());
    return msOp("DynamicQuantizeMatMul", List.of(g, quantized, scale));
  }

  /** Records {@link #node} as one whose backward product is integer (an int8 host layer's). */
  void recordIntegerProduct() {
    integerProducts.add(node.name());
  }

  /** Whether input {@code i} of the node needs a gradient. */
  public boolean needs(int i) {
    return i < needs.length && needs[i];
  }

  public TensorType type(String value) {
    return graph.typeOrThrow(value);
  }

  /** Emits a single-output ai.onnx node; returns its output, typed as {@code resultType}. */
  public String op(String opType, List<String> inputs, AttributeProto... attributes) {
    String out = graph.op(name(opType), opType, inputs, attributes);
    return out;
  }

  /** A single-output com.microsoft node (an op ONNX Runtime registers beside ai.onnx, e.g. FusedMatMul). */
  public String msOp(String opType, List<String> inputs, AttributeProto... attributes) {
    return graph.add(name(opType), opType, Graph.MS_DOMAIN, inputs, 1, Node.attrs(attributes)).get(0);
  }

  /** A single-output node of one of Graft's {@link dev.graft.compiler.ir.FusedOps}. */
  public String fusedOp(String opType, List<String> inputs) {
    return graph.add(name(opType), opType, Graph.GRAFT_DOMAIN, inputs, 1, Node.attrs()).get(0);
  }

  /** Emits an ai.onnx node with {@code outputs} outputs; returns their names. */
  public List<String> ops(String opType, List<String> inputs, int outputs, AttributeProto... attributes) {
    return graph.add(name(opType), opType, "", inputs, outputs, Node.attrs(attributes));
  }

  /** Like {@link #op} and records the output's type (needed when a later rule step asks). */
  public String typed(TensorType type, String opType, List<String> inputs, AttributeProto... attributes) {
    String out = op(opType, inputs, attributes);
    graph.types().put(out, type);
    return out;
  }

  private String name(String opType) {
    return "/grad" + (node.name().startsWith("/") ? "" : "/") + node.name() + "/" + opType;
  }

  /** A scalar constant with the element type of {@code like}. */
  public String scalar(double value, String like) {
    return graph.scalar(name("c"), type(like).elemType(), value);
  }

  public String longs(List<Long> values) {
    return graph.longs(name("axes"), values);
  }

  /** Splits {@code value} along {@code axis} into {@code count} parts of the sizes in {@code sizes}. */
  public List<String> split(String value, String sizes, long axis, int count) {
    return graph.add(name("Split"), "Split", "", List.of(value, sizes), count,
        Node.attrs(Node.attr("axis", axis)));
  }

  /** The values of a constant integer tensor (initializer or Constant node), or null. */
  public @Nullable List<Long> constLongs(String value) {
    if (value.isEmpty()) {
      return null;
    }
    TensorProto t = graph.initializers().get(value);
    if (t == null) {
      Node p = graph.producer(value);
      t = p != null && p.opType().equals("Constant") ? p.attrTensor("value") : null;
    }
    if (t == null || graph.externalInitializers().contains(value)) {
      return null;
    }
    if (t.getDataType() == TensorType.BOOL) {
      return List.of(t.hasRawData() ? (long) t.getRawData().byteAt(0) : (long) t.getInt32Data(0));
    }
    return Tensors.readLongs(t);
  }

  /**
   * Whether {@code value} is an initializer whose data this graph holds and whose every element is
   * 0 (raw bytes or int32 data: the int8, uint8 and wider integer encodings alike). A frozen host
   * initializer the runtime feeds counts by the compiled host's values: the runtime opens only that
   * host unless told otherwise (its SHA-256, {@code GRAFT-R011}).
   */
  public boolean allZero(String value) {
    TensorProto t = graph.initializers().get(value);
    if (t == null || t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      return false;
    }
    if (t.hasRawData()) {
      for (byte b : t.getRawData().toByteArray()) {
        if (b != 0) {
          return false;
        }
      }
      return true;
    }
    return t.getInt32DataList().stream().allMatch(v -> v == 0) && t.getInt64DataList().stream().allMatch(v -> v == 0)
        && t.getFloatDataList().stream().allMatch(v -> v == 0) && t.getDoubleDataList().stream().allMatch(v -> v == 0);
  }

  /** The value of a constant floating-point scalar (an initializer or a Constant node, one element), or null. */
  public @Nullable Double constScalar(String value) {
    if (value.isEmpty()) {
      return null;
    }
    TensorProto t = graph.initializers().get(value);
    if (t == null) {
      Node p = graph.producer(value);
      t = p != null && p.opType().equals("Constant") ? p.attrTensor("value") : null;
    }
    if (t == null || graph.externalInitializers().contains(value) || Tensors.elementCount(t) != 1
        || t.getDataType() != TensorType.FLOAT && t.getDataType() != TensorType.DOUBLE) {
      return null;
    }
    return Tensors.readDoubles(t)[0];
  }

  /**
   * The values of {@code value} when it is a constant, or when shape inference computed them from
   * fixed sizes ({@link dev.graft.compiler.ir.Graph#foldedValues()}: a head size read by {@code
   * Shape → Gather → Div}); null when they depend on the data.
   */
  public @Nullable List<Long> foldedLongs(String value) {
    List<Long> constant = constLongs(value);
    return constant != null || value.isEmpty() ? constant : graph.foldedValues().get(value);
  }

  public String mul(String a, String b) {
    return op("Mul", List.of(a, b));
  }

  public String neg(String a) {
    return op("Neg", List.of(a));
  }

  /**
   * The runtime shape of {@code value} as a 1-D int64 tensor. Where shape inference knows every
   * dimension as a number or as a symbolic dimension of a graph input (batch, sequence), the shape
   * is assembled from constants and the shapes of those inputs, so the backward pass does not
   * read {@code value} itself and ONNX Runtime need not keep it alive for its shape alone; else
   * {@code Shape(value)}.
   */
  public String shape(String value) {
    TensorType t = graph.type(value);
    List<String> parts = new ArrayList<>();
    List<Long> run = new ArrayList<>();
    if (t != null && t.hasRank()) {
      for (Dim d : t.dims()) {
        if (d.isKnown()) {
          run.add(d.size());
          continue;
        }
        String source = d.isSymbol() ? symbolSource(d.symbolName()) : null;
        if (source == null) {
          return op("Shape", List.of(value));
        }
        if (!run.isEmpty()) {
          parts.add(longs(List.copyOf(run)));
          run.clear();
        }
        parts.add(source);
      }
      if (parts.isEmpty()) {
        return longs(List.copyOf(run));
      }
      if (!run.isEmpty()) {
        parts.add(longs(List.copyOf(run)));
      }
      return parts.size() == 1 ? parts.get(0) : op("Concat", parts, Node.attr("axis", 0L));
    }
    return op("Shape", List.of(value));
  }

  /** The number of elements of {@code value}, an int64 scalar, from {@link #shape}. */
  public String size(String value) {
    return op("ReduceProd", List.of(shape(value)), Node.attr("keepdims", 0L));
  }

  /** {@code Shape(input, start = axis, end = axis + 1)} of the first graph input with dimension {@code symbol}. */
  private @Nullable String symbolSource(String symbol) {
    for (var e : graph.inputs().entrySet()) {
      TensorType t = e.getValue();
      if (!t.hasRank()) {
        continue;
      }
      for (int axis = 0; axis < t.rank(); axis++) {
        Dim d = t.dim(axis);
        if (d.isSymbol() && symbol.equals(d.symbolName())) {
          return op("Shape", List.of(e.getKey()), Node.attr("start", (long) axis), Node.attr("end", (long) axis + 1));
        }
      }
    }
    return null;
  }

  /**
   * The reduction of {@link #unbroadcast} where shape inference cannot tell whether some dims of
   * {@code input} (the {@code undecided} ones, e.g. a size the host computes from the data) were
   * broadcast: the broadcast pattern is read at run time. Sums over the {@code known} axes and over
   * each undecided axis whose input size is 1 (a ReduceSum with computed axes, none when none are
   * 1), then reshapes to the input's runtime shape.
   */
  private String unbroadcastAtRunTime(String grad, String input, List<Long> known, List<Integer> undecided, int lead) {
    List<Long> positions = new ArrayList<>();
    for (int i : undecided) {
      positions.add((long) i);
    }
    String inShape = op("Shape", List.of(input));
    String sizes = op("Gather", List.of(inShape, longs(positions)), Node.attr("axis", 0L));
    String isOne = op("Equal", List.of(sizes, longs(List.of(1L))));
    List<Long> shifted = new ArrayList<>();
    for (int i : undecided) {
      shifted.add((long) (i + lead));
    }
    // The undecided axes whose input size is 1, as indices into the result: Compress keeps them.
    String picked = op("Compress", List.of(longs(shifted), isOne), Node.attr("axis", 0L));
    String all = known.isEmpty() ? picked : op("Concat", List.of(longs(known), picked), Node.attr("axis", 0L));
    String summed = op("ReduceSum", List.of(grad, all), Node.attr("keepdims", 1L), Node.attr("noop_with_empty_axes", 1L));
    return op("Reshape", List.of(summed, inShape));
  }

  /**
   * Reduces {@code grad}, shaped like the broadcast result {@code resultType}, to the shape of
   * {@code input} by summing over the broadcast axes. Axes are decided from the inferred
   * shapes: an input dim that is 1 where the result's is not was broadcast.
   */
  public String unbroadcast(String grad, TensorType resultType, String input) {
    TensorType in = type(input);
    if (!in.hasRank() || !resultType.hasRank()) {
      throw new MissingGradientException(node, "broadcast shapes unknown for input " + input);
    }
    int lead = resultType.rank() - in.rank();
    List<Long> axes = new ArrayList<>();
    for (int i = 0; i < lead; i++) {
      axes.add((long) i);
    }
    List<Integer> undecided = new ArrayList<>();
    for (int i = 0; i < in.rank(); i++) {
      Dim x = in.dim(i);
      Dim y = resultType.dim(i + lead);
      if (x.is(1) && !y.is(1)) {
        axes.add((long) (i + lead));
      } else if (!x.sameAs(y) && !(x.isKnown() && y.isKnown())) {
        if (!x.isKnown() && !y.isKnown() && (x.isSymbol() || y.isSymbol()) ) {
          // Different symbols: by broadcasting rules one of them is 1 only if unknown; treat as equal.
          continue;
        }
        undecided.add(i);
      }
    }
    if (!undecided.isEmpty()) {
      return unbroadcastAtRunTime(grad, input, axes, undecided, lead);
    }
    if (axes.isEmpty()) {
      return grad;
    }
    String summed = op("ReduceSum", List.of(grad, longs(axes)), Node.attr("keepdims", 1L));
    if (lead == 0) {
      return summed;
    }
    return op("Reshape", List.of(summed, shape(input)));
  }
}
