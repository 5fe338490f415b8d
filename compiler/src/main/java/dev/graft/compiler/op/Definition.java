package dev.graft.compiler.op;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Pattern;

/**
 * What a custom adapter kind's {@link CustomAdapterKind#define} sees at one site: the linear
 * layer's input {@link #input()} {@code x [.., in]} and the value {@link #value()} {@code v [..,
 * out]} the adapter maps (the layer's output, bias included, or what an enclosing composition
 * made of it), their widths, the declaration's options, and the means to declare parameters
 * and constants. The definition returns the adapted value, of {@code v}'s shape.
 *
 * <p>Faults are thrown where they are written, as {@link DefinitionException}s naming the kind:
 * an op on shapes it cannot take (GRAFT090), an option the kind does not declare (GRAFT091), a
 * parameter declared twice (GRAFT092), anything else (GRAFT093).
 */
public final class Definition {
  /** What parameter names and save keys look like: dot-separated words. */
  static final Pattern NAME = Pattern.compile("[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*");

  private final CustomAdapterKind kind;
  private final AdapterSpec spec;
  private final Site site;
  private final GraphVariant variant;
  private final Tensor input;
  private final Tensor value;
  private final Map<String, Param> params = new LinkedHashMap<>();

  Definition(CustomAdapterKind kind, AdapterSpec spec, Site site, List<Dim> inputShape, long width, GraphVariant variant) {
    this.kind = kind;
    this.spec = spec;
    this.site = site;
    this.variant = variant;
    this.input = Tensor.leaf(this, Tensor.Source.INPUT, inputShape);
    List<Dim> valueShape = new ArrayList<>(inputShape.subList(0, Math.max(0, inputShape.size() - 1)));
    valueShape.add(Dim.of(width));
    this.value = Tensor.leaf(this, Tensor.Source.VALUE, valueShape);
  }

  /** The linear layer's input x {@code [.., in]}. */
  public Tensor input() {
    return input;
  }

  /** The value v {@code [.., out]} the adapter maps: the layer's output with its bias, or a composition's part of it. */
  public Tensor value() {
    return value;
  }

  /** The linear layer's input width ({@code in}, a Kotlin keyword, is not a method name here). */
  public long inWidth() {
    return input.shape.isEmpty() || !input.shape.get(input.rank() - 1).isKnown()
        ? 0 : input.shape.get(input.rank() - 1).size();
  }

  /** The width of {@link #value()}: the layer's output width (or a part of it under a Split composition). */
  public long outWidth() {
    return value.width();
  }

  /** Whether this is the training graph. The parameters declared must not depend on it. */
  public boolean training() {
    return variant.trains();
  }

  /** The graph variant being built. The parameters declared must not depend on it. */
  public GraphVariant variant() {
    return variant;
  }

  /** The site's module path, e.g. {@code encoder.layer.0.attention.self.query}. */
  public String modulePath() {
    return site.modulePath();
  }

  /** The site's layer index, if its name has one. */
  public OptionalInt layer() {
    return site.layer();
  }

  /** An integer option, as a size: {@code d.param("down", d.inWidth(), d.option("rank"))}. */
  public long option(String name) {
    return intOption(name);
  }

  /** An integer option of the declaration (checked and defaulted). */
  public int intOption(String name) {
    return ((Number) read(name, "an integer", AdapterOption.Type.INT)).intValue();
  }

  /** A number option (an integer option reads as its value). */
  public double doubleOption(String name) {
    return ((Number) read(name, "a number", AdapterOption.Type.DOUBLE, AdapterOption.Type.INT)).doubleValue();
  }

  public boolean boolOption(String name) {
    return (Boolean) read(name, "a boolean", AdapterOption.Type.BOOLEAN);
  }

  public String stringOption(String name) {
    return (String) read(name, "text", AdapterOption.Type.STRING);
  }

  private Object read(String name, String as, AdapterOption.Type... types) {
    AdapterOption option = kind.options().stream().filter(o -> o.name().equals(name)).findFirst().orElse(null);
    if (option == null) {
      throw new DefinitionException(ErrorCode.DEFINITION_OPTION_UNKNOWN, kind.displayName(), name, as,
          "the kind declares no such option", optionList());
    }
    if (!List.of(types).contains(option.type())) {
      throw new DefinitionException(ErrorCode.DEFINITION_OPTION_UNKNOWN, kind.displayName(), name, as,
          "it is declared as " + typeName(option.type()), optionList());
    }
    Object v = spec.options().get(name);
    return v != null ? option.coerce(v) : option.defaultValue();
  }

  private List<String> optionList() {
    return kind.options().stream().map(o -> o.name() + ": " + typeName(o.type())).toList();
  }

  private static String typeName(AdapterOption.Type t) {
    return switch (t) {
      case INT -> "an integer";
      case DOUBLE -> "a number";
      case BOOLEAN -> "a boolean";
      case STRING -> "text";
      case INTS -> "a list of integers";
    };
  }

  /**
   * Declares parameter {@code name} (dot-separated words, unique in the definition) of {@code
   * shape}, each size positive. Every parameter declared must take part in the result.
   */
  public Param param(String name, long... shape) {
    List<Long> s = new ArrayList<>();
    for (long d : shape) {
      s.add(d);
    }
    return param(name, s);
  }

  public Param param(String name, List<Long> shape) {
    if (!NAME.matcher(name).matches()) {
      throw invalid("parameter name must be dot-separated words of letters, digits and _, got '" + name + "'");
    }
    List<Dim> dims = new ArrayList<>();
    for (long d : shape) {
      if (d <= 0) {
        throw shapeError("param(\"" + name + "\")", "positive sizes", shape.toString());
      }
      dims.add(Dim.of(d));
    }
    Param previous = params.get(name);
    if (previous != null) {
      throw new DefinitionException(ErrorCode.DEFINITION_PARAMETER_DUPLICATE, kind.displayName(), name,
          previous.shape(), dims);
    }
    Param p = new Param(this, name, dims);
    params.put(name, p);
    return p;
  }

  /** A scalar constant of the host's element type. */
  public Tensor constant(double value) {
    return Tensor.scalar(this, value);
  }

  /** The parameters declared, in order. */
  List<Param> params() {
    return List.copyOf(params.values());
  }

  /** Checks that {@code t} is an expression of this definition. */
  void own(Tensor t) {
    if (t.owner != this) {
      throw invalid("an expression of another definition (or another site) is used: " + t);
    }
  }

  DefinitionException shapeError(String op, String expected, String given) {
    return new DefinitionException(ErrorCode.DEFINITION_SHAPE_MISMATCH, kind.displayName(), site.modulePath(), op,
        expected, given);
  }

  DefinitionException invalid(String what) {
    return new DefinitionException(ErrorCode.DEFINITION_INVALID, kind.displayName(), site.modulePath(), what);
  }
}
