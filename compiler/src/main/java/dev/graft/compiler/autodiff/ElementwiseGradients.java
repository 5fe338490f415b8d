package dev.graft.compiler.autodiff;

import static dev.graft.compiler.autodiff.RuleHelpers.binary;
import static dev.graft.compiler.autodiff.RuleHelpers.castTo;
import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of elementwise arithmetic: the broadcasting binary ops (each gradient summed
 * back to its operand's shape), unary math, casts, Where, Clip and the variadic Min/Max.
 */
final class ElementwiseGradients {
  private ElementwiseGradients() {}

  static List<@Nullable String> identity(Node n, List<@Nullable String> g, Grad c) {
    return List.of(g.get(0));
  }

  static List<@Nullable String> add(Node n, List<@Nullable String> g, Grad c) {
    return binary(n, g.get(0), c, g.get(0), g.get(0));
  }

  static List<@Nullable String> sub(Node n, List<@Nullable String> g, Grad c) {
    return binary(n, g.get(0), c, g.get(0), c.needs(1) ? c.neg(g.get(0)) : null);
  }

  static List<@Nullable String> mul(Node n, List<@Nullable String> g, Grad c) {
    return binary(n, g.get(0), c,
        c.needs(0) ? c.mul(g.get(0), n.input(1)) : null,
        c.needs(1) ? c.mul(g.get(0), n.input(0)) : null);
  }

  static List<@Nullable String> div(Node n, List<@Nullable String> g, Grad c) {
    return binary(n, g.get(0), c,
        c.needs(0) ? c.op("Div", List.of(g.get(0), n.input(1))) : null,
        // d(a/b)/db = -(a/b)/b
        c.needs(1) ? c.neg(c.op("Div", List.of(c.mul(g.get(0), n.output(0)), n.input(1)))) : null);
  }

  /**
   * Pow: dx = g·p·x^(p−1), dp = g·y·log(x). A constant scalar exponent is folded: p = 1 gives g,
   * p = 2 gives g·2x, p = 3 gives g·3x², other constants g·p·x^(p−1) with p−1 a constant (ONNX
   * Runtime's Pow by a non-integer-like tensor exponent takes a slow generic path).
   */
  static List<@Nullable String> pow(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    String p = n.input(1);
    String gy = g.get(0);
    String dx = null;
    String dp = null;
    if (c.needs(0)) {
      Double k = c.needs(1) ? null : c.constScalar(p);
      if (k == null) {
        String pm1 = c.op("Sub", List.of(p, c.scalar(1, p)));
        dx = c.mul(gy, c.mul(p, c.op("Pow", List.of(x, pm1))));
      } else if (k == 1) {
        dx = gy;
      } else if (k == 2) {
        dx = c.mul(gy, c.mul(x, c.scalar(2, x)));
      } else if (k == 3) {
        dx = c.mul(gy, c.mul(c.mul(x, x), c.scalar(3, x)));
      } else {
        dx = c.mul(gy, c.mul(c.op("Pow", List.of(x, c.scalar(k - 1, p))), c.scalar(k, x)));
      }
    }
    if (c.needs(1)) {
      dp = c.mul(gy, c.mul(n.output(0), c.op("Log", List.of(x))));
    }
    return binary(n, gy, c, dx, dp);
  }

  static List<@Nullable String> neg(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.neg(g.get(0)));
  }

  static List<@Nullable String> sqrt(Node n, List<@Nullable String> g, Grad c) {
    return List.of(
        c.op("Div", List.of(c.mul(g.get(0), c.scalar(0.5, n.output(0))), n.output(0))));
  }

  static List<@Nullable String> reciprocal(Node n, List<@Nullable String> g, Grad c) {
    return List.of(
        c.neg(c.mul(g.get(0), c.mul(n.output(0), n.output(0)))));
  }

  static List<@Nullable String> exp(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.mul(g.get(0), n.output(0)));
  }

  static List<@Nullable String> log(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.op("Div", List.of(g.get(0), n.input(0))));
  }

  static List<@Nullable String> abs(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.mul(g.get(0), c.op("Sign", List.of(n.input(0)))));
  }

  static List<@Nullable String> sin(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.mul(g.get(0), c.op("Cos", List.of(n.input(0)))));
  }

  static List<@Nullable String> cos(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.neg(c.mul(g.get(0), c.op("Sin", List.of(n.input(0))))));
  }

  static List<@Nullable String> erf(Node n, List<@Nullable String> g, Grad c) {
    // d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)
    String x = n.input(0);
    String e = c.op("Exp", List.of(c.neg(c.mul(x, x))));
    return List.of(c.mul(g.get(0), c.mul(e, c.scalar(2 / Math.sqrt(Math.PI), x))));
  }

  static List<@Nullable String> cast(Node n, List<@Nullable String> g, Grad c) {
    TensorType from = c.type(n.input(0));
    return List.of(from.isFloating() ? c.op("Cast", List.of(g.get(0)), attr("to", (long) from.elemType())) : null);
  }

  static List<@Nullable String> castLike(Node n, List<@Nullable String> g, Grad c) {
    // Only the first input's values flow; the second gives the element type.
    TensorType from = c.type(n.input(0));
    return Arrays.asList(from.isFloating() && c.needs(0) ? c.op("CastLike", List.of(g.get(0), n.input(0))) : null, null);
  }

  static List<@Nullable String> where(Node n, List<@Nullable String> g, Grad c) {
    TensorType out = c.type(n.output(0));
    String zero = c.scalar(0, n.output(0));
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null, null));
    if (c.needs(1)) {
      r.set(1, c.unbroadcast(c.op("Where", List.of(n.input(0), g.get(0), zero)), out, n.input(1)));
    }
    if (c.needs(2)) {
      r.set(2, c.unbroadcast(c.op("Where", List.of(n.input(0), zero, g.get(0))), out, n.input(2)));
    }
    return r;
  }

  /**
   * Clip(x, min, max): the gradient passes where {@code min <= x <= max} (bounds inclusive, as
   * torch.clamp); below {@code min} it goes to {@code min}, above {@code max} to {@code max}.
   */
  static List<@Nullable String> clip(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    String gy = g.get(0);
    TensorType out = c.type(n.output(0));
    String zero = c.scalar(0, x);
    String below = n.hasInput(1) ? c.op("Less", List.of(x, n.input(1))) : null;
    String above = n.hasInput(2) ? c.op("Greater", List.of(x, n.input(2))) : null;
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null, null));
    if (c.needs(0)) {
      String outside = below == null ? above : above == null ? below : c.op("Or", List.of(below, above));
      r.set(0, outside == null ? gy : c.op("Where", List.of(outside, zero, gy)));
    }
    if (c.needs(1) && below != null) {
      r.set(1, c.unbroadcast(c.op("Where", List.of(below, gy, zero)), out, n.input(1)));
    }
    if (c.needs(2) && above != null) {
      r.set(2, c.unbroadcast(c.op("Where", List.of(above, gy, zero)), out, n.input(2)));
    }
    return r.subList(0, n.inputs().size());
  }

  /**
   * Variadic, broadcasting Min/Max: each input gets the gradient where it equals the result.
   * Ties split it evenly among the inputs attaining the extremum (torch.maximum's convention
   * for two inputs; at a two-way tie this is also the central difference).
   */
  static List<@Nullable String> minMax(Node n, List<@Nullable String> g, Grad c) {
    String y = n.output(0);
    TensorType out = c.type(y);
    List<String> masks = new ArrayList<>();
    for (String in : n.inputs()) {
      masks.add(castTo(c, c.op("Equal", List.of(in, y)), out.elemType()));
    }
    String share = masks.size() == 1 ? g.get(0) : c.op("Div", List.of(g.get(0), c.op("Sum", masks)));
    List<@Nullable String> r = new ArrayList<>();
    for (int i = 0; i < masks.size(); i++) {
      r.add(c.needs(i) ? c.unbroadcast(c.mul(share, masks.get(i)), out, n.input(i)) : null);
    }
    return r;
  }
}
