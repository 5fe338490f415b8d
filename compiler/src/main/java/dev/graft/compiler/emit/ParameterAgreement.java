package dev.graft.compiler.emit;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * The check that every graph variant declares the same parameters: the same names in the same
 * order, each with the same shape, element type (of its graph input), role and the rest of its
 * manifest record. The runtime feeds one set of parameter tensors to every graph, so a kind that
 * adds a parameter in one variant only (or shapes it differently) is a compiler bug: reported as
 * an internal error naming the parameter and the variants.
 *
 * <p>Needs: the finished variants, the first being the one the manifest describes. Guarantees:
 * null when they agree, else one {@link ErrorCode#INTERNAL_ERROR} diagnostic on the declaration.
 */
public final class ParameterAgreement {
  private ParameterAgreement() {}

  public static @Nullable Diagnostic check(GraftSpec spec, List<VariantGraph> variants) {
    VariantGraph first = variants.get(0);
    for (VariantGraph other : variants.subList(1, variants.size())) {
      String why = difference(first, other);
      if (why != null) {
        return Diagnostic.of(ErrorCode.INTERNAL_ERROR, spec.source(), null, spec.name(),
            "the " + first.variant() + " and " + other.variant() + " graphs declare different parameters: " + why);
      }
    }
    return null;
  }

  private static @Nullable String difference(VariantGraph a, VariantGraph b) {
    List<Parameter> pa = a.parameters();
    List<Parameter> pb = b.parameters();
    for (int i = 0; i < Math.max(pa.size(), pb.size()); i++) {
      if (i >= pa.size()) {
        return "parameter '" + pb.get(i).getName() + "' (#" + i + ") is only in the " + b.variant() + " graph";
      }
      if (i >= pb.size()) {
        return "parameter '" + pa.get(i).getName() + "' (#" + i + ") is only in the " + a.variant() + " graph";
      }
      Parameter x = pa.get(i);
      Parameter y = pb.get(i);
      if (!x.getName().equals(y.getName())) {
        return "parameter #" + i + " is '" + x.getName() + "' in the " + a.variant() + " graph but '" + y.getName()
            + "' in the " + b.variant() + " graph";
      }
      TensorType tx = a.graph().inputs().get(x.getName());
      TensorType ty = b.graph().inputs().get(y.getName());
      if (!Objects.equals(tx, ty)) {
        return "parameter '" + x.getName() + "' is " + tx + " in the " + a.variant() + " graph but " + ty + " in the "
            + b.variant() + " graph";
      }
      if (!x.equals(y)) {
        return "parameter '" + x.getName() + "' is declared as {" + oneLine(x) + "} in the " + a.variant()
            + " graph but {" + oneLine(y) + "} in the " + b.variant() + " graph";
      }
    }
    return null;
  }

  private static String oneLine(Parameter p) {
    return com.google.protobuf.TextFormat.printer().emittingSingleLine(true).printToString(p).trim();
  }
}
