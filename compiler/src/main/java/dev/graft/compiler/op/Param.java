package dev.graft.compiler.op;

import dev.graft.compiler.ir.Dim;
import dev.graft.spec.manifest.Init;
import java.util.List;
import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * A trainable parameter of a custom adapter kind, declared by {@link Definition#param} and used
 * as a {@link Tensor}. It is placed as {@code <module path>.<kind id>.<name>} (e.g. {@code
 * encoder.layer.0.attention.self.query.gated_lora.down}) and saved, unless {@link #save} says
 * otherwise, under PEFT's prefix as {@code base_model.model.<module path>.<kind id>.<name>}.
 *
 * <p>It starts at zero unless an initializer is chosen: {@link #zeros}, {@link #ones}, {@link
 * #constant}, {@link #normal}, {@link #uniform}, {@link #kaimingUniform}, or {@link #init(Init)}
 * with the same {@link Init} kinds. Each setter returns this parameter, so a declaration reads
 * {@code d.param("down", d.inWidth(), d.option("rank")).kaimingUniform()}.
 */
public final class Param extends Tensor {
  private final String name;
  private Init init = Init.ZEROS;
  private double scale;
  private boolean noDecay;
  private @Nullable String saveKey;
  private boolean saveTransposed;

  Param(Definition owner, String name, List<Dim> shape) {
    super(owner, Source.PARAM, "", List.of(), List.of(), shape, 0, List.of());
    this.name = name;
  }

  /** The name given to {@link Definition#param}. */
  public String name() {
    return name;
  }

  /** Every value 0 (the default). */
  public Param zeros() {
    return set(Init.ZEROS, 0);
  }

  /** Every value 1. */
  public Param ones() {
    return set(Init.ONES, 0);
  }

  /** Every value {@code value}. */
  public Param constant(double value) {
    if (!Double.isFinite(value)) {
      throw owner.invalid("parameter '" + name + "' constant must be finite, got " + value);
    }
    return set(Init.CONSTANT, value);
  }

  /** Normal with mean 0 and standard deviation {@code std}. */
  public Param normal(double std) {
    return set(Init.NORMAL, positive("normal standard deviation", std));
  }

  /** Uniform in {@code [−bound, bound]}. */
  public Param uniform(double bound) {
    return set(Init.UNIFORM, positive("uniform bound", bound));
  }

  /**
   * Kaiming-uniform (uniform in {@code ±1/sqrt(fan-in)}, as torch initializes {@code nn.Linear}),
   * the fan-in being the product of every axis but the last ({@code in} of an {@code [in, out]}
   * weight; the size of a vector).
   */
  public Param kaimingUniform() {
    long fanIn = 1;
    for (int i = 0; i < Math.max(1, rank() - 1) && i < rank(); i++) {
      fanIn *= shape.get(i).size();
    }
    return kaimingUniform(fanIn);
  }

  /** Kaiming-uniform with an explicit fan-in: uniform in {@code ±1/sqrt(fanIn)}. */
  public Param kaimingUniform(double fanIn) {
    return set(Init.KAIMING_UNIFORM, positive("kaiming-uniform fan-in", fanIn));
  }

  /**
   * The initializer {@code init}: {@link Init#ZEROS}, {@link Init#ONES} or {@link
   * Init#KAIMING_UNIFORM} (fan-in as {@link #kaimingUniform()}); the kinds that need a number use
   * {@link #init(Init, double)}.
   */
  public Param init(Init init) {
    return switch (init) {
      case ZEROS -> zeros();
      case ONES -> ones();
      case KAIMING_UNIFORM -> kaimingUniform();
      default -> throw owner.invalid("parameter '" + name + "' init " + init + " needs a number: use init(Init."
          + init + ", value) or " + init.name().toLowerCase(Locale.ROOT) + "(value)");
    };
  }

  /**
   * The initializer {@code init} with its number: the standard deviation of {@link Init#NORMAL},
   * the bound of {@link Init#UNIFORM}, the value of {@link Init#CONSTANT}, the fan-in of {@link
   * Init#KAIMING_UNIFORM}; ignored by {@link Init#ZEROS} and {@link Init#ONES}.
   */
  public Param init(Init init, double value) {
    return switch (init) {
      case ZEROS -> zeros();
      case ONES -> ones();
      case CONSTANT -> constant(value);
      case NORMAL -> normal(value);
      case UNIFORM -> uniform(value);
      case KAIMING_UNIFORM -> kaimingUniform(value);
      default -> throw owner.invalid("parameter '" + name + "' init must be one of ZEROS, ONES, CONSTANT, NORMAL,"
          + " UNIFORM, KAIMING_UNIFORM, got " + init);
    };
  }

  /** Not decayed by AdamW (biases, scales, gates). */
  public Param noDecay() {
    noDecay = true;
    return this;
  }

  /**
   * Saved under {@code base_model.model.<module path>.<key>} in its own shape, e.g. {@code
   * save("lora_A.weight")}, instead of {@code <kind id>.<name>}.
   */
  public Param save(String key) {
    saveKey = checkKey(key);
    saveTransposed = false;
    return this;
  }

  /** As {@link #save}, stored transposed as torch stores a linear weight ({@code [out, in]}); 2-D only. */
  public Param saveTransposed(String key) {
    if (rank() != 2) {
      throw owner.invalid("parameter '" + name + "' is saved transposed, which needs 2 axes; its shape is " + shape);
    }
    saveKey = checkKey(key);
    saveTransposed = true;
    return this;
  }

  Init initKind() {
    return init;
  }

  double initScale() {
    return scale;
  }

  boolean isNoDecay() {
    return noDecay;
  }

  @Nullable String saveKey() {
    return saveKey;
  }

  boolean isSaveTransposed() {
    return saveTransposed;
  }

  private Param set(Init kind, double value) {
    init = kind;
    scale = value;
    return this;
  }

  private double positive(String what, double value) {
    if (!(value > 0) || Double.isInfinite(value)) {
      throw owner.invalid("parameter '" + name + "' " + what + " must be positive, got " + value);
    }
    return value;
  }

  private String checkKey(String key) {
    if (!Definition.NAME.matcher(key).matches()) {
      throw owner.invalid("parameter '" + name + "' save key must be dot-separated words of letters, digits and _,"
          + " got '" + key + "'");
    }
    return key;
  }
}
