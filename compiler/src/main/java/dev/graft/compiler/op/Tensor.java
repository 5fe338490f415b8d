package dev.graft.compiler.op;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Node;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * A tensor expression of a custom adapter kind's {@link Definition}: the layer's input or output,
 * a parameter, a constant, or an op applied to other expressions. Expressions are immutable
 * values with a known shape; each op checks its operands' shapes when it is written (GRAFT090)
 * and adds nothing to a graph: the kind places the whole expression once {@link
 * CustomAdapterKind#define} returns, each sub-expression once however often it is used.
 *
 * <p>Shapes are lists of {@link Dim}s: sizes, or symbols such as {@code batch} and {@code
 * sequence} taken from the host. Elementwise ops broadcast as numpy does, aligned from the last
 * axis; a symbolic dimension broadcasts only with itself or 1, since the host may run with any
 * size there.
 *
 * <p>The method names are Kotlin's operator names, so in Kotlin {@code x.matmul(a) * scale + v},
 * {@code -t} and {@code t[0, 16]} work as written; scalars are {@code double} overloads.
 */
public sealed class Tensor permits Param {
  /** What an expression is. */
  enum Source {
    /** The linear layer's input x. */
    INPUT,
    /** The value v the adapter acts on (the layer's output). */
    VALUE,
    PARAM,
    /** A scalar of the host's element type. */
    CONSTANT,
    /** A 1-D int64 constant that an op takes as an input (Slice bounds, ReduceSum axes). */
    INDICES,
    OP
  }

  final Definition owner;
  final Source source;
  /** The ONNX op type of an {@link Source#OP}; empty otherwise. */
  final String op;
  final List<Tensor> operands;
  final List<AttributeProto> attributes;
  final List<Dim> shape;
  /** The value of a {@link Source#CONSTANT}; the ratio of a {@code Dropout}. */
  final double constant;
  /** The values of an {@link Source#INDICES}. */
  final List<Long> indices;

  Tensor(Definition owner, Source source, String op, List<Tensor> operands, List<AttributeProto> attributes,
      List<Dim> shape, double constant, List<Long> indices) {
    this.owner = owner;
    this.source = source;
    this.op = op;
    this.operands = List.copyOf(operands);
    this.attributes = List.copyOf(attributes);
    this.shape = List.copyOf(shape);
    this.constant = constant;
    this.indices = List.copyOf(indices);
  }

  static Tensor leaf(Definition owner, Source source, List<Dim> shape) {
    return new Tensor(owner, source, "", List.of(), List.of(), shape, 0, List.of());
  }

  static Tensor scalar(Definition owner, double value) {
    return new Tensor(owner, Source.CONSTANT, "", List.of(), List.of(), List.of(), value, List.of());
  }

  private Tensor indices(List<Long> values) {
    return new Tensor(owner, Source.INDICES, "", List.of(), List.of(), List.of(Dim.of(values.size())), 0, values);
  }

  private Tensor op(String opType, List<Tensor> in, List<Dim> outShape, AttributeProto... attrs) {
    return new Tensor(owner, Source.OP, opType, in, List.of(attrs), outShape, 0, List.of());
  }

  /** The shape, e.g. {@code [batch, sequence, 384]}. */
  public List<Dim> shape() {
    return shape;
  }

  public int rank() {
    return shape.size();
  }

  /** The size of the last axis. */
  public long width() {
    if (shape.isEmpty() || !shape.get(shape.size() - 1).isKnown()) {
      throw owner.shapeError("width", "a last axis of fixed size", shape.toString());
    }
    return shape.get(shape.size() - 1).size();
  }

  /** {@code this + other}, broadcasting. */
  public Tensor plus(Tensor other) {
    return binary("Add", "plus (+)", other);
  }

  public Tensor plus(double other) {
    return plus(owner.constant(other));
  }

  /** {@code this − other}, broadcasting. */
  public Tensor minus(Tensor other) {
    return binary("Sub", "minus (-)", other);
  }

  public Tensor minus(double other) {
    return minus(owner.constant(other));
  }

  /** {@code this · other} elementwise, broadcasting (see {@link #matmul} for the matrix product). */
  public Tensor times(Tensor other) {
    return binary("Mul", "times (*)", other);
  }

  public Tensor times(double other) {
    return times(owner.constant(other));
  }

  /** {@code this / other} elementwise, broadcasting. */
  public Tensor div(Tensor other) {
    return binary("Div", "div (/)", other);
  }

  public Tensor div(double other) {
    return div(owner.constant(other));
  }

  /** {@code −this}. */
  public Tensor unaryMinus() {
    return unary("Neg");
  }

  /**
   * The matrix product over the last axis of this and the second-to-last of {@code other} (its
   * only axis when 1-D), leading axes broadcast: {@code [.., n, k] · [k, m] → [.., n, m]}.
   */
  public Tensor matmul(Tensor other) {
    owner.own(other);
    if (rank() < 1 || other.rank() < 1) {
      throw owner.shapeError("matmul", "operands of rank >= 1", shape + " and " + other.shape);
    }
    Dim k = shape.get(rank() - 1);
    Dim kOther = other.rank() == 1 ? other.shape.get(0) : other.shape.get(other.rank() - 2);
    if (!compatible(k, kOther)) {
      throw owner.shapeError("matmul of " + shape, "a right operand with " + k + " rows", other.shape.toString());
    }
    List<Dim> lead = rank() > 2 ? shape.subList(0, rank() - 2) : List.of();
    List<Dim> leadOther = other.rank() > 2 ? other.shape.subList(0, other.rank() - 2) : List.of();
    List<Dim> batch = broadcast(lead, leadOther);
    if (batch == null) {
      throw owner.shapeError("matmul", "leading axes that broadcast", shape + " and " + other.shape);
    }
    List<Dim> out = new ArrayList<>(batch);
    if (rank() >= 2) {
      out.add(shape.get(rank() - 2));
    }
    if (other.rank() >= 2) {
      out.add(other.shape.get(other.rank() - 1));
    }
    return op("MatMul", List.of(this, other), out);
  }

  /** This with its last two axes swapped. */
  public Tensor transpose() {
    if (rank() < 2) {
      throw owner.shapeError("transpose", "a tensor of rank >= 2", shape.toString());
    }
    List<Long> perm = new ArrayList<>();
    for (long i = 0; i < rank(); i++) {
      perm.add(i);
    }
    perm.set(rank() - 2, (long) rank() - 1);
    perm.set(rank() - 1, (long) rank() - 2);
    List<Dim> out = new ArrayList<>(shape);
    out.set(rank() - 2, shape.get(rank() - 1));
    out.set(rank() - 1, shape.get(rank() - 2));
    return op("Transpose", List.of(this), out, Node.attr("perm", perm));
  }

  /** Columns {@code from} (inclusive) to {@code to} (exclusive) of the last axis: {@code t[0, 16]} in Kotlin. */
  public Tensor get(long from, long to) {
    long size = width();
    if (from < 0 || to > size || from >= to) {
      throw owner.shapeError("get(" + from + ", " + to + ")",
          "0 <= from < to <= " + size + " (the last axis of " + shape + ")", "from " + from + ", to " + to);
    }
    List<Dim> out = new ArrayList<>(shape);
    out.set(rank() - 1, Dim.of(to - from));
    return op("Slice", List.of(this, indices(List.of(from)), indices(List.of(to)), indices(List.of(-1L))), out);
  }

  public Tensor get(int from, int to) {
    return get((long) from, (long) to);
  }

  /** Column {@code index} of the last axis, kept as an axis of size 1: {@code t[3]} in Kotlin. */
  public Tensor get(long index) {
    return get(index, index + 1);
  }

  public Tensor get(int index) {
    return get((long) index);
  }

  public Tensor relu() {
    return unary("Relu");
  }

  /** GELU in its exact form {@code x·(1 + erf(x/√2))/2}, as BERT's (ONNX Runtime has no float64 Erf: float32 hosts only). */
  public Tensor gelu() {
    return times(div(Math.sqrt(2)).unary("Erf").plus(1)).times(0.5);
  }

  public Tensor tanh() {
    return unary("Tanh");
  }

  public Tensor sigmoid() {
    return unary("Sigmoid");
  }

  public Tensor exp() {
    return unary("Exp");
  }

  /** The natural logarithm. */
  public Tensor log() {
    return unary("Log");
  }

  public Tensor sqrt() {
    return unary("Sqrt");
  }

  /** Softmax over the last axis. */
  public Tensor softmax() {
    return softmax(-1);
  }

  /** Softmax over {@code axis} (negative: from the end). */
  public Tensor softmax(int axis) {
    if (axis < -rank() || axis >= rank()) {
      throw owner.shapeError("softmax(" + axis + ")", "an axis in [" + -rank() + ", " + rank() + ")", shape.toString());
    }
    return op("Softmax", List.of(this), shape, Node.attr("axis", (long) axis));
  }

  /** The mean over the last axis, kept as an axis of size 1 (so it broadcasts back). */
  public Tensor mean() {
    return op("ReduceMean", List.of(this), reducedShape("mean"), Node.attr("axes", List.of(-1L)),
        Node.attr("keepdims", 1L));
  }

  /** The sum over the last axis, kept as an axis of size 1 (so it broadcasts back). */
  public Tensor sum() {
    return op("ReduceSum", List.of(this, indices(List.of(-1L))), reducedShape("sum"), Node.attr("keepdims", 1L));
  }

  /** Layer normalization over the last axis with {@code scale} and {@code bias} of its width, epsilon 1e-5. */
  public Tensor layerNorm(Tensor scale, Tensor bias) {
    return layerNorm(scale, bias, 1e-5);
  }

  /** Layer normalization over the last axis: {@code (x − mean)/sqrt(var + epsilon)·scale + bias}. */
  public Tensor layerNorm(Tensor scale, Tensor bias, double epsilon) {
    owner.own(scale);
    owner.own(bias);
    List<Dim> affine = List.of(rank() == 0 ? Dim.unknown() : shape.get(rank() - 1));
    for (Tensor t : List.of(scale, bias)) {
      if (rank() == 0 || t.rank() != 1 || !compatible(t.shape.get(0), affine.get(0))) {
        throw owner.shapeError("layerNorm of " + shape, "scale and bias of shape " + affine,
            scale.shape + " and " + bias.shape);
      }
    }
    if (!(epsilon > 0)) {
      throw owner.invalid("layerNorm epsilon must be positive, got " + epsilon);
    }
    return op("LayerNormalization", List.of(this, scale, bias), shape, Node.attr("axis", -1L),
        Node.attr("epsilon", (float) epsilon));
  }

  /**
   * The same values, through which training passes no gradient: the straight-through estimator of
   * a rounding {@code q(w)} is {@code w.plus(q.minus(w).stopGradient())}, which is {@code q} forward
   * and passes {@code w}'s gradient unchanged.
   */
  public Tensor stopGradient() {
    return unary(dev.graft.compiler.ir.Graph.STOP_GRADIENT);
  }

  /** Dropout with probability {@code ratio} in the training graph; the identity in the inference graph. */
  public Tensor dropout(double ratio) {
    if (!(ratio >= 0 && ratio < 1)) {
      throw owner.invalid("dropout ratio must be in [0, 1), got " + ratio);
    }
    return ratio == 0 ? this : new Tensor(owner, Source.OP, "Dropout", List.of(this), List.of(), shape, ratio, List.of());
  }

  private List<Dim> reducedShape(String what) {
    if (rank() < 1) {
      throw owner.shapeError(what, "a tensor of rank >= 1", shape.toString());
    }
    List<Dim> out = new ArrayList<>(shape);
    out.set(rank() - 1, Dim.of(1));
    return out;
  }

  private Tensor unary(String opType) {
    return op(opType, List.of(this), shape);
  }

  private Tensor binary(String opType, String name, Tensor other) {
    owner.own(other);
    List<Dim> out = broadcast(shape, other.shape);
    if (out == null) {
      throw owner.shapeError(name, "operands whose shapes broadcast (equal, or 1, aligned from the last axis)",
          shape + " and " + other.shape);
    }
    return op(opType, List.of(this, other), out);
  }

  /**
   * Numpy broadcasting of two shapes, or null where a pair of dimensions differs: two sizes
   * other than 1, or a symbol and anything but itself or 1. An unknown dimension takes the other.
   */
  static @Nullable List<Dim> broadcast(List<Dim> a, List<Dim> b) {
    int rank = Math.max(a.size(), b.size());
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < rank; i++) {
      int ia = i - (rank - a.size());
      int ib = i - (rank - b.size());
      Dim da = ia < 0 ? Dim.of(1) : a.get(ia);
      Dim db = ib < 0 ? Dim.of(1) : b.get(ib);
      if (da.is(1)) {
        out.add(db);
      } else if (db.is(1)) {
        out.add(da);
      } else if (compatible(da, db)) {
        out.add(da.isKnown() || da.isSymbol() ? da : db);
      } else {
        return null;
      }
    }
    return out;
  }

  /** Whether two dimensions may be equal: the same size or symbol, or one of them unknown. */
  static boolean compatible(Dim a, Dim b) {
    boolean aFree = !a.isKnown() && !a.isSymbol();
    boolean bFree = !b.isKnown() && !b.isSymbol();
    return aFree || bFree || a.sameAs(b);
  }

  @Override
  public String toString() {
    return (source == Source.OP ? op : source.name().toLowerCase(java.util.Locale.ROOT)) + shape;
  }
}
