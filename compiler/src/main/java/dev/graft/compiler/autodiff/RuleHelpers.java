package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Pieces several gradient rules share: attribute and list builders, the result of a rule that
 * differentiates its first input only, broadcasting binary results, zeros and casts.
 */
final class RuleHelpers {
  private RuleHelpers() {}

  static dev.graft.spec.onnx.Onnx.AttributeProto attrS(String name, String value) {
    return dev.graft.spec.onnx.Onnx.AttributeProto.newBuilder()
        .setName(name)
        .setType(dev.graft.spec.onnx.Onnx.AttributeProto.AttributeType.STRING)
        .setS(com.google.protobuf.ByteString.copyFromUtf8(value))
        .build();
  }

  static List<Long> longList(long[] values) {
    List<Long> l = new ArrayList<>();
    for (long v : values) {
      l.add(v);
    }
    return l;
  }

  /** {@code first} for input 0 and null for every other input of {@code n}. */
  static List<@Nullable String> nullsAfter(int count, Node n, String first) {
    List<@Nullable String> r = new ArrayList<>();
    r.add(first);
    for (int i = 1; i < n.inputs().size(); i++) {
      r.add(null);
    }
    return r;
  }

  /** The gradients of a broadcasting binary op, each summed back to its operand's shape. */
  static List<@Nullable String> binary(
      Node n, String g, Grad c, @Nullable String da, @Nullable String db) {
    TensorType out = c.type(n.output(0));
    return Arrays.asList(
        c.needs(0) && da != null ? c.unbroadcast(da, out, n.input(0)) : null,
        c.needs(1) && db != null ? c.unbroadcast(db, out, n.input(1)) : null);
  }

  static String zerosLike(Grad c, String shape, int elemType) {
    return c.op("ConstantOfShape", List.of(shape),
        attr("value", Tensors.floats("zero", elemType, List.of(1L), new double[] {0})));
  }

  static String castTo(Grad c, String value, int elemType) {
    return c.op("Cast", List.of(value), attr("to", (long) elemType));
  }

  /** {@code axes} made non-negative; every axis of {@code rank} when null or empty. */
  static List<Long> normalizedAxes(@Nullable List<Long> axes, int rank) {
    List<Long> norm = new ArrayList<>();
    if (axes == null || axes.isEmpty()) {
      for (long i = 0; i < rank; i++) {
        norm.add(i);
      }
    } else {
      for (long a : axes) {
        norm.add(a < 0 ? a + rank : a);
      }
    }
    return norm;
  }
}
