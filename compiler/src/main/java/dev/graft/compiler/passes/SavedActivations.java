package dev.graft.compiler.passes;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.emit.ManifestWriter;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.SavedActivation;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Saved-activations pass: finds the forward values of a training step that its backward pass
 * reads. ONNX Runtime's memory planner frees every value after its last consumer, so these are
 * exactly the activations held from the forward pass until the backward pass is done with them;
 * everything else of the forward pass lives only as long as the forward pass needs it. Needs: the
 * differentiated, shape-inferred training graph and the nodes it had before autodiff. Guarantees:
 * one entry per saved value, sorted by name, with its symbolic shape.
 */
public final class SavedActivations {
  private SavedActivations() {}

  /**
   * The forward values (outputs of the nodes named in {@code forward}, constants excepted) that
   * a node not named there reads, with their types.
   */
  public static List<SavedActivation> find(Graph graph, Set<String> forward) {
    Set<String> produced = new HashSet<>();
    for (Node n : graph.nodes()) {
      if (forward.contains(n.name()) && !n.opType().equals("Constant")) {
        n.outputs().stream().filter(o -> !o.isEmpty()).forEach(produced::add);
      }
    }
    TreeSet<String> saved = new TreeSet<>();
    for (Node n : graph.nodes()) {
      if (!forward.contains(n.name())) {
        n.inputs().stream().filter(produced::contains).forEach(saved::add);
      }
    }
    List<SavedActivation> out = new ArrayList<>();
    for (String name : saved) {
      TensorType t = graph.typeOrThrow(name);
      SavedActivation.Builder b = SavedActivation.newBuilder().setName(name).setElemType(t.elemType());
      if (t.hasRank()) {
        t.dims().forEach(d -> b.addShape(ManifestWriter.dim(d)));
      } else {
        b.addShape(ManifestWriter.dim(Dim.unknown()));
      }
      out.add(b.build());
    }
    return out;
  }

  /**
   * Bytes of the saved activations for the given sizes of the symbolic dimensions, e.g. {@code
   * {batch_size=1, sequence_length=128}} for one example of 128 tokens.
   *
   * @throws GraftCompileException ({@code GRAFT192}) naming the activation and the dimension that
   *     {@code sizes} does not give, or one the host leaves unnamed (its size is known only at run time)
   */
  public static long bytes(List<SavedActivation> saved, Map<String, Long> sizes) {
    long total = 0;
    for (SavedActivation a : saved) {
      long count = 1;
      for (dev.graft.spec.manifest.Dim d : a.getShapeList()) {
        if (d.hasSize()) {
          count = Math.multiplyExact(count, d.getSize());
        } else {
          if (d.getSymbol().equals(UNNAMED)) {
            throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.ACTIVATION_SIZE_UNKNOWN, null, null,
                a.getName(), "a dimension whose size the host does not name (" + shape(a) + ")",
                "its size is not known before the graph runs, so the bytes cannot be computed for any sizes")));
          }
          Long size = sizes.get(d.getSymbol());
          if (size == null || size < 0) {
            throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.ACTIVATION_SIZE_UNKNOWN, null, null,
                a.getName(), "dimension '" + d.getSymbol() + "' (" + shape(a) + ")",
                "give it a size >= 0 (sizes given: " + new TreeMap<>(sizes) + ", symbols: " + symbols(saved) + ")")));
          }
          count = Math.multiplyExact(count, size);
        }
      }
      total = Math.addExact(total, Math.multiplyExact(count, elementBytes(a.getElemType(), a.getName())));
    }
    return total;
  }

  /** How the manifest writes a dimension the host leaves unnamed and shape inference cannot size. */
  private static final String UNNAMED = "?";

  private static String shape(SavedActivation a) {
    StringBuilder sb = new StringBuilder("[");
    for (dev.graft.spec.manifest.Dim d : a.getShapeList()) {
      sb.append(sb.length() == 1 ? "" : ", ").append(d.hasSize() ? String.valueOf(d.getSize()) : d.getSymbol());
    }
    return sb.append(']').toString();
  }

  /** The symbolic dimensions the saved activations depend on, sorted. */
  public static Set<String> symbols(List<SavedActivation> saved) {
    Set<String> out = new TreeSet<>();
    for (SavedActivation a : saved) {
      for (dev.graft.spec.manifest.Dim d : a.getShapeList()) {
        if (!d.hasSize()) {
          out.add(d.getSymbol());
        }
      }
    }
    return out;
  }

  /**
   * A one-line summary for the given dimension sizes, e.g. {@code "211 values, 4.2 MiB at
   * {batch_size=1, sequence_length=128}"}.
   */
  public static String describe(List<SavedActivation> saved, Map<String, Long> sizes) {
    return String.format(Locale.ROOT, "%d values, %s at %s", saved.size(), human(bytes(saved, sizes)),
        new TreeMap<>(sizes));
  }

  /**
   * The saved bytes as a polynomial in the symbolic dimensions other than {@code batch} (taken as
   * 1), highest degree first, e.g. {@code "24576·sequence_length^2 + 1179648·sequence_length + 3080
   * bytes per example"}. Values whose shape could not be inferred are counted at the end.
   */
  public static String perExample(List<SavedActivation> saved, String batch) {
    TreeMap<String, Long> terms = new TreeMap<>((a, b) -> {
      int byDegree = Integer.compare(degree(b), degree(a));
      return byDegree != 0 ? byDegree : a.compareTo(b);
    });
    int unknown = 0;
    for (SavedActivation a : saved) {
      long coefficient = elementBytes(a.getElemType(), a.getName());
      List<String> factors = new ArrayList<>();
      boolean known = true;
      for (dev.graft.spec.manifest.Dim d : a.getShapeList()) {
        if (d.hasSize()) {
          coefficient = Math.multiplyExact(coefficient, d.getSize());
        } else if (d.getSymbol().equals("?")) {
          known = false;
        } else if (!d.getSymbol().equals(batch)) {
          factors.add(d.getSymbol());
        }
      }
      if (!known) {
        unknown++;
        continue;
      }
      terms.merge(monomial(factors), coefficient, Math::addExact);
    }
    StringBuilder sb = new StringBuilder();
    terms.forEach((m, c) -> sb.append(sb.length() == 0 ? "" : " + ").append(c).append(m.isEmpty() ? "" : "·" + m));
    if (sb.length() == 0) {
      sb.append('0');
    }
    sb.append(" bytes per example");
    if (unknown > 0) {
      sb.append(" (+ ").append(unknown).append(" values of unknown shape)");
    }
    return sb.toString();
  }

  private static String monomial(List<String> factors) {
    TreeMap<String, Integer> powers = new TreeMap<>();
    factors.forEach(f -> powers.merge(f, 1, Integer::sum));
    StringBuilder sb = new StringBuilder();
    powers.forEach((f, p) -> sb.append(sb.length() == 0 ? "" : "·").append(f).append(p == 1 ? "" : "^" + p));
    return sb.toString();
  }

  private static int degree(String monomial) {
    if (monomial.isEmpty()) {
      return 0;
    }
    int degree = 0;
    for (String factor : monomial.split("·")) {
      int caret = factor.indexOf('^');
      degree += caret < 0 ? 1 : Integer.parseInt(factor.substring(caret + 1));
    }
    return degree;
  }

  static String human(long bytes) {
    if (bytes < 1024) {
      return bytes + " B";
    }
    double v = bytes;
    String[] units = {"KiB", "MiB", "GiB", "TiB"};
    int u = -1;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
  }

  private static int elementBytes(int elemType, String name) {
    return switch (elemType) {
      case TensorType.FLOAT, TensorType.INT32 -> 4;
      case TensorType.INT64, TensorType.DOUBLE -> 8;
      case TensorType.BOOL, 2, 3 -> 1; // bool, uint8, int8
      case TensorType.FLOAT16, TensorType.BFLOAT16, 4, 5 -> 2; // float16, bfloat16, uint16, int16
      default -> throw new IllegalArgumentException(
          "saved activation '" + name + "' has ONNX element type " + elemType + " of unknown size");
    };
  }
}
