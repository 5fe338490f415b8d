package dev.graft.compiler.autodiff;

import static dev.graft.compiler.autodiff.RuleHelpers.attrS;
import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.QuantizedMatMul;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.Int8Backward;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of contractions: MatMul (a batched {@code x·W} gets its weight gradient as one
 * GEMM), two-operand Einsum, and the int8 linear layer as a whole ({@link #int8MatMul}). Gemm's
 * rule lives with the CNN ops in {@link ConvGradients}.
 */
final class ContractionGradients {
  private ContractionGradients() {}

  /**
   * The straight-through rule of an int8 linear layer {@code y ≈ x·W_deq} ({@link
   * QuantizedMatMul}), for its input only (its weight is frozen int8): {@code dL/dx = dL/dy ·
   * W_deqᵀ}, where {@code W_deq = (Wq − wzp)·ws} (per output column). What is not differentiated:
   * the rounding and clipping of x to uint8 and the int32 product are taken as exact (the
   * activation's quantize/dequantize as identity), and x's scale and zero point, which depend on
   * x's range, are taken as constants. Either way the graph holds the weight as int8 only.
   *
   * <ul>
   *   <li>{@link Int8Backward#DEQUANTIZED}: {@code W_deq} is computed at run time by {@code
   *       DequantizeLinear(Wq, ws, wzp, axis = 1)} (ONNX Runtime does not constant-fold it), then
   *       one float {@code MatMul} of the gradient with its transpose.
   *   <li>{@link Int8Backward#INTEGER}: with {@code ĝ = dL/dy ⊙ ws} (the column scales moved onto
   *       the gradient, where they are the product's inner index), {@code dL/dx = ĝ·Wqᵀ − (ĝ·wzp)}:
   *       {@code ĝ·Wqᵀ} is {@code com.microsoft:DynamicQuantizeMatMul} over the int8 transpose of
   *       the weight (a {@code Transpose} of an initializer, folded by ONNX Runtime at load), which
   *       quantizes ĝ per tensor to uint8; the zero-point term, a matrix-vector product, is left
   *       out where every zero point is 0 (symmetric weights, as ONNX Runtime's dynamic
   *       quantization writes them).
   * </ul>
   *
   * @param gy the gradient of the layer's float output y
   * @param c the emitter of the layer's output node
   */
  static String int8MatMul(QuantizedMatMul q, String gy, Grad c) {
    if (c.int8Backward() == Int8Backward.INTEGER) {
      return int8MatMulInteger(q, gy, c);
    }
    List<String> in = new ArrayList<>(List.of(q.weight(), q.weightScale()));
    if (q.weightZeroPoint() != null) {
      in.add(q.weightZeroPoint());
    }
    String dequantized = c.op("DequantizeLinear", in, attr("axis", 1L));
    String transposed = c.op("Transpose", List.of(dequantized), attr("perm", List.of(1L, 0L)));
    return c.op("MatMul", List.of(gy, transposed));
  }

  private static String int8MatMulInteger(QuantizedMatMul q, String gy, Grad c) {
    c.recordIntegerProduct();
    String scaled = c.op("Mul", List.of(gy, q.weightScale()));
    String transposed = c.op("Transpose", List.of(q.weight()), attr("perm", List.of(1L, 0L)));
    String product = c.msOp("DynamicQuantizeMatMul", List.of(scaled, transposed, c.scalar(1.0, q.weightScale())));
    String zp = q.weightZeroPoint();
    if (zp == null || c.allZero(zp)) {
      return product;
    }
    String zeroPoint = c.op("Cast", List.of(zp), attr("to", (long) TensorType.FLOAT));
    String shift = c.type(zp).rank() == 0
        ? c.op("Mul", List.of(c.op("ReduceSum", List.of(scaled, c.longs(List.of(-1L))), attr("keepdims", 1L)), zeroPoint))
        : c.op("MatMul", List.of(scaled, c.op("Unsqueeze", List.of(zeroPoint, c.longs(List.of(1L))))));
    return c.op("Sub", List.of(product, shift));
  }

  static List<@Nullable String> matmul(Node n, List<@Nullable String> g, Grad c) {
    String a = n.input(0);
    String b = n.input(1);
    String gy = g.get(0);
    TensorType ta = c.type(a);
    TensorType tb = c.type(b);
    if (ta.rank() < 2 || tb.rank() < 2) {
      throw new MissingGradientException(n, "MatMul gradient needs operands of rank >= 2");
    }
    String da = null;
    String db = null;
    if (c.needs(0)) {
      da = c.int8Backward() == Int8Backward.INTEGER && ta.elemType() == TensorType.FLOAT && c.isFrozenMatrix(b)
          ? c.integerProduct(gy, b)
          : ta.elemType() == TensorType.FLOAT
          ? c.msOp("FusedMatMul", List.of(gy, b), attr("transB", 1L))
          : c.op("MatMul", List.of(gy, transposeLast(c, b, tb.rank())));
      da = c.unbroadcast(da, withLast(c.type(n.output(0)), ta.dim(ta.rank() - 2), ta.dim(ta.rank() - 1)), a);
    }
    if (c.needs(1)) {
      if (tb.rank() == 2 && ta.rank() > 2) {
        // Weight gradient of a batched x·W: flatten the batch dims, one GEMM.
        Dim k = ta.dim(ta.rank() - 1);
        Dim m = tb.dim(1);
        if (!k.isKnown() || !m.isKnown()) {
          throw new MissingGradientException(n, "MatMul weight gradient needs fixed inner sizes");
        }
        String a2 = c.op("Reshape", List.of(a, c.longs(List.of(-1L, k.size()))));
        String g2 = c.op("Reshape", List.of(gy, c.longs(List.of(-1L, m.size()))));
        db = c.op("Gemm", List.of(a2, g2), attr("transA", 1L));
      } else {
        if (ta.elemType() != TensorType.FLOAT) {
          db = c.op("MatMul", List.of(transposeLast(c, a, ta.rank()), gy));
        } else if (lastDimLarger(ta, c.type(n.output(0)))) {
          // aᵀ·g as (gᵀ·a)ᵀ, transposing the smaller operand (an attention's probabilities times
          // its values: g, not the probabilities); the Transpose merges with the one that usually
          // follows (the attention heads').
          db = transposeLast(c, c.msOp("FusedMatMul", List.of(gy, a), attr("transA", 1L)), c.type(n.output(0)).rank());
        } else {
          db = c.msOp("FusedMatMul", List.of(a, gy), attr("transA", 1L));
        }
        db = c.unbroadcast(db, withLast(c.type(n.output(0)), tb.dim(tb.rank() - 2), tb.dim(tb.rank() - 1)), b);
      }
    }
    return Arrays.asList(da, db);
  }

  /**
   * Whether {@code a}'s last dim is larger than {@code g}'s: for {@code aᵀ·g} (a [M, K], g [M, N])
   * ONNX Runtime's FusedMatMul copies its transposed A, so transposing g instead copies M·N
   * rather than M·K elements. A symbolic dim (a batch or sequence size) is taken as larger than a
   * known one (a head or hidden size); two symbolic dims, or unknown ones, as not larger.
   */
  private static boolean lastDimLarger(TensorType a, TensorType g) {
    if (!a.hasRank() || !g.hasRank()) {
      return false;
    }
    Dim k = a.dim(a.rank() - 1);
    Dim n = g.dim(g.rank() - 1);
    return k.isKnown() && n.isKnown() ? k.size() > n.size() : k.isSymbol() && n.isKnown();
  }

  static TensorType withLast(TensorType t, Dim second, Dim last) {
    List<Dim> s = new ArrayList<>(t.dims());
    s.set(s.size() - 2, second);
    s.set(s.size() - 1, last);
    return TensorType.of(t.elemType(), s);
  }

  static String transposeLast(Grad c, String x, int rank) {
    List<Long> perm = new ArrayList<>();
    for (long i = 0; i < rank; i++) {
      perm.add(i);
    }
    Collections.swap(perm, rank - 1, rank - 2);
    return c.op("Transpose", List.of(x), attr("perm", perm));
  }

  /** A two-operand einsum equation made explicit: operand index strings and the output's. */
  record EinsumEquation(String a, String b, String out) {
    /**
     * Parses {@code equation}; throws naming the node for what the rule does not support
     * (other than two operands, ellipsis, an index repeated within one term).
     */
    static EinsumEquation parse(Node n) {
      String eq = n.attrString("equation");
      if (eq == null) {
        throw new MissingGradientException(n, "Einsum without an equation");
      }
      String e = eq.replace(" ", "");
      String why = null;
      String[] sides = e.split("->", -1);
      String[] terms = sides[0].split(",", -1);
      if (e.contains(".")) {
        why = "ellipsis ('...') is not supported";
      } else if (terms.length != 2 || n.inputs().size() != 2) {
        why = "only two-operand equations are supported";
      } else if (sides.length > 2) {
        why = "malformed equation";
      }
      if (why == null) {
        String out;
        if (sides.length == 2) {
          out = sides[1];
        } else {
          // Implicit output: the indices that occur once, in alphabetical order.
          StringBuilder o = new StringBuilder();
          String all = terms[0] + terms[1];
          all.chars().distinct().sorted().filter(ch -> all.indexOf(ch) == all.lastIndexOf(ch))
              .forEach(ch -> o.append((char) ch));
          out = o.toString();
        }
        for (String t : List.of(terms[0], terms[1], out)) {
          if (!t.chars().allMatch(Character::isLetter) || t.chars().distinct().count() != t.length()) {
            why = "term '" + t + "' repeats an index or has a non-letter (diagonals are not supported)";
          }
        }
        if (why == null) {
          String[] ops = {terms[0], terms[1]};
          for (int i = 0; i < 2 && why == null; i++) {
            for (char ch : ops[i].toCharArray()) {
              if (out.indexOf(ch) < 0 && ops[1 - i].indexOf(ch) < 0) {
                why = "index '" + ch + "' of operand " + i + " is summed within that operand alone";
              }
            }
          }
          for (char ch : out.toCharArray()) {
            if (terms[0].indexOf(ch) < 0 && terms[1].indexOf(ch) < 0) {
              why = "output index '" + ch + "' is in no operand";
            }
          }
        }
        if (why == null) {
          return new EinsumEquation(terms[0], terms[1], out);
        }
      }
      throw new MissingGradientException(n, "Einsum equation '" + eq + "' is not supported: " + why);
    }
  }

  /**
   * Two-operand Einsum {@code a,b->o}: the gradient of each operand is the einsum of the output
   * gradient with the other operand, {@code o,b->a} and {@code o,a->b}.
   */
  static List<@Nullable String> einsum(Node n, List<@Nullable String> g, Grad c) {
    EinsumEquation e = EinsumEquation.parse(n);
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null));
    if (c.needs(0)) {
      r.set(0, c.op("Einsum", List.of(g.get(0), n.input(1)), attrS("equation", e.out() + "," + e.b() + "->" + e.a())));
    }
    if (c.needs(1)) {
      r.set(1, c.op("Einsum", List.of(g.get(0), n.input(0)), attrS("equation", e.out() + "," + e.a() + "->" + e.b())));
    }
    return r;
  }
}
