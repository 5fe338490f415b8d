package dev.graft.compiler.kinds;

import dev.graft.compiler.diag.ErrorCode;
import java.util.List;
import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * One option of an adapter kind: its name (the annotation member and builder property), type,
 * default and the values it accepts. The compiler checks every declaration's options against
 * its kind's list and fills in defaults, so kinds read checked values only.
 *
 * @param choices the accepted values of a text option; empty for other types
 */
public record AdapterOption(
    String name, Type type, Object defaultValue, double min, double max, boolean minExclusive,
    List<String> choices, String description) {
  /** The value types options can have. */
  public enum Type {
    INT,
    DOUBLE,
    BOOLEAN,
    STRING,
    /** A list of integers, each in {@code [min, max]}: a {@code List<Integer>} value. */
    INTS
  }

  public AdapterOption {
    choices = List.copyOf(choices);
  }

  /** An integer option in {@code [min, max]}. */
  public static AdapterOption integer(String name, int defaultValue, int min, int max, String description) {
    return new AdapterOption(name, Type.INT, defaultValue, min, max, false, List.of(), description);
  }

  /** A number option in {@code (0, ∞)}. */
  public static AdapterOption positive(String name, double defaultValue, String description) {
    return new AdapterOption(name, Type.DOUBLE, defaultValue, 0, Double.POSITIVE_INFINITY, true, List.of(), description);
  }

  /** A number option in {@code [min, max)} (a probability with 0, 1). */
  public static AdapterOption number(String name, double defaultValue, double min, double max, String description) {
    return new AdapterOption(name, Type.DOUBLE, defaultValue, min, max, false, List.of(), description);
  }

  public static AdapterOption bool(String name, boolean defaultValue, String description) {
    return new AdapterOption(name, Type.BOOLEAN, defaultValue, 0, 0, false, List.of(), description);
  }

  /** A text option that takes one of {@code choices}; an empty list accepts any text. */
  public static AdapterOption choice(String name, String defaultValue, List<String> choices, String description) {
    return new AdapterOption(name, Type.STRING, defaultValue, 0, 0, false, choices, description);
  }

  /**
   * A list of integers, each in {@code [min, max]}, empty by default (e.g. one count per layer);
   * an annotation's {@code int[]} member, a builder's {@code List<Integer>}.
   */
  public static AdapterOption integers(String name, int min, int max, String description) {
    return new AdapterOption(name, Type.INTS, List.of(), min, max, false, List.of(), description);
  }

  /** A list of integers from a list or array of whole numbers, or null when it is not one. */
  private static @Nullable List<Integer> integerList(Object value) {
    List<?> items;
    if (value instanceof int[] a) {
      items = java.util.Arrays.stream(a).boxed().toList();
    } else if (value instanceof List<?> l) {
      items = l;
    } else {
      return null;
    }
    List<Integer> out = new java.util.ArrayList<>();
    for (Object item : items) {
      if (item instanceof Integer || item instanceof Long) {
        out.add(((Number) item).intValue());
      } else if (item instanceof Double d && d == Math.rint(d) && Math.abs(d) < Integer.MAX_VALUE) {
        out.add(d.intValue());
      } else {
        return null;
      }
    }
    return List.copyOf(out);
  }

  /**
   * Converts a given value to this option's type (integers are accepted for number options), or
   * null when it has another type.
   */
  public @Nullable Object coerce(Object value) {
    return switch (type) {
      case INT -> value instanceof Integer || value instanceof Long ? ((Number) value).intValue()
          : value instanceof Double d && d == Math.rint(d) && Math.abs(d) < Integer.MAX_VALUE ? d.intValue() : null;
      case DOUBLE -> value instanceof Number n ? n.doubleValue() : null;
      case BOOLEAN -> value instanceof Boolean ? value : null;
      case STRING -> value instanceof String ? value : value instanceof Enum<?> e ? e.name().toLowerCase(Locale.ROOT) : null;
      case INTS -> integerList(value); // Mixtures of adapters (integer lists)
    };
  }

  /**
   * What is wrong with a value of this option's type, as the error catalog words it: the error
   * code and the expectation ("in 1..4096", "positive", "one of [relu, gelu]"); null when valid.
   */
  public @Nullable Problem check(Object value) {
    switch (type) {
      case INT -> {
        int v = (Integer) value;
        if (v < min || v > max) {
          return new Problem(ErrorCode.OPTION_OUT_OF_RANGE, max >= Integer.MAX_VALUE
              ? "at least " + (long) min : "in " + (long) min + ".." + (long) max);
        }
      }
      case DOUBLE -> {
        double v = (Double) value;
        if (minExclusive && min == 0 && Double.isInfinite(max)) {
          if (!(v > 0) || Double.isInfinite(v)) {
            return new Problem(ErrorCode.OPTION_NOT_POSITIVE, "positive");
          }
        } else if (!(v >= min && v < max)) {
          return new Problem(min == 0 && max == 1 ? ErrorCode.OPTION_NOT_A_PROBABILITY : ErrorCode.OPTION_OUT_OF_RANGE,
              "in [" + fmt(min) + ", " + fmt(max) + ")");
        }
      }
      case STRING -> {
        if (!choices.isEmpty() && !choices.contains(value)) {
          return new Problem(ErrorCode.OPTION_OUT_OF_RANGE, "one of " + choices);
        }
      }
      case BOOLEAN -> {}
      case INTS -> {
        for (Object item : (List<?>) value) {
          int v = (Integer) item;
          if (v < min || v > max) {
            return new Problem(ErrorCode.OPTION_OUT_OF_RANGE, "a list of integers in " + (long) min + ".." + (long) max);
          }
        }
      }
    }
    return null;
  }

  private static String fmt(double v) {
    return v == Math.rint(v) && !Double.isInfinite(v) ? String.valueOf((long) v) : String.valueOf(v);
  }

  /** A rejected option value: the error code and what was expected. */
  public record Problem(ErrorCode code, String expected) {}

  /** The value as the manifest writes it ("8", "0.1", "true", "relu", "2,2,4" for a list). */
  public static String text(Object value) {
    if (value instanceof List<?> list) {
      return list.stream().map(AdapterOption::text).collect(java.util.stream.Collectors.joining(","));
    }
    if (value instanceof Double d && d == Math.rint(d) && !d.isInfinite() && Math.abs(d) < 1e15) {
      return String.valueOf(d.longValue());
    }
    return String.valueOf(value);
  }
}
