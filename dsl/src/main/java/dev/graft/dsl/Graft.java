package dev.graft.dsl;

import dev.graft.dsl.compile.CompiledGraft;
import dev.graft.dsl.compile.GraftCompiler;
import dev.graft.dsl.compile.HostModel;
import dev.graft.dsl.spec.AdamWSpec;
import dev.graft.dsl.spec.ClassificationSpec;
import dev.graft.dsl.spec.GraftSpec;
import dev.graft.dsl.spec.LoraSpec;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * The builder front-end: the same declarations as the annotations, at run time.
 *
 * <pre>{@code
 * CompiledGraft graft = Graft.host(Path.of("all-minilm-l6-v2.onnx"))
 *     .lora(".*(query|value)/MatMul", l -> l.rank(8).alpha(16))
 *     .classification(2)
 *     .compile();
 * }</pre>
 *
 * In Kotlin: {@code Graft.host(path).lora(".*query.*") { rank = 8 }.classification(2).compile()}.
 */
public final class Graft {
  private final HostModel host;
  private String name = "Graft";
  private final List<LoraSpec> loras = new ArrayList<>();
  private @Nullable ClassificationSpec head;
  private AdamWSpec optimizer = AdamWSpec.DEFAULT;

  private Graft(HostModel host) {
    this.host = host;
  }

  public static Graft host(Path model) {
    return new Graft(HostModel.read(model));
  }

  public static Graft host(HostModel model) {
    return new Graft(model);
  }

  /** A name for the compiled graft (used in resource and manifest names). */
  public Graft name(String value) {
    this.name = value;
    return this;
  }

  /** LoRA with default options on the linear sites whose node names match {@code target}. */
  public Graft lora(String target) {
    return lora(target, l -> {});
  }

  /** LoRA on the linear sites whose node names match {@code target} in full. */
  public Graft lora(String target, Configure<LoraOptions> configure) {
    LoraOptions o = new LoraOptions();
    configure.apply(o);
    loras.add(new LoraSpec(target, o.rank, o.alpha, o.dropout, o.rslora, o.layers, null));
    return this;
  }

  /** A classification head with mean pooling over the host's first output. */
  public Graft classification(int labels) {
    return classification(labels, h -> {});
  }

  public Graft classification(int labels, Configure<HeadOptions> configure) {
    HeadOptions o = new HeadOptions();
    configure.apply(o);
    head = new ClassificationSpec(labels, o.pooling, o.output, null);
    return this;
  }

  public Graft adamW(Configure<AdamWOptions> configure) {
    AdamWOptions o = new AdamWOptions();
    configure.apply(o);
    optimizer = new AdamWSpec(o.beta1, o.beta2, o.epsilon, o.weightDecay);
    return this;
  }

  /** The declaration as the compiler sees it. */
  public GraftSpec spec() {
    if (head == null) {
      throw new IllegalStateException("declare a task first, e.g. .classification(2)");
    }
    return new GraftSpec(name, host.name(), loras, head, optimizer, null);
  }

  /**
   * Compiles against the host.
   *
   * @throws dev.graft.dsl.diag.GraftCompileException with every error of the declaration
   */
  public CompiledGraft compile() {
    return GraftCompiler.compile(spec(), host).orThrow();
  }

  /** A configuration block; the last parameter of builder methods, so Kotlin can pass a lambda. */
  @FunctionalInterface
  public interface Configure<T> {
    void apply(T options);
  }

  /** LoRA options (Kotlin properties through get/set). */
  public static final class LoraOptions {
    private int rank = 8;
    private double alpha = 16;
    private double dropout;
    private boolean rslora;
    private List<Integer> layers = List.of();

    public LoraOptions rank(int value) {
      rank = value;
      return this;
    }

    public LoraOptions alpha(double value) {
      alpha = value;
      return this;
    }

    public LoraOptions dropout(double value) {
      dropout = value;
      return this;
    }

    public LoraOptions rslora(boolean value) {
      rslora = value;
      return this;
    }

    public LoraOptions layers(Integer... value) {
      return layers(List.of(value));
    }

    public LoraOptions layers(List<Integer> value) {
      layers = List.copyOf(value);
      return this;
    }

    public int getRank() {
      return rank;
    }

    public void setRank(int value) {
      rank = value;
    }

    public double getAlpha() {
      return alpha;
    }

    public void setAlpha(double value) {
      alpha = value;
    }

    public double getDropout() {
      return dropout;
    }

    public void setDropout(double value) {
      dropout = value;
    }

    public boolean isRslora() {
      return rslora;
    }

    public void setRslora(boolean value) {
      rslora = value;
    }

    public List<Integer> getLayers() {
      return layers;
    }

    public void setLayers(List<Integer> value) {
      layers = List.copyOf(value);
    }
  }

  /** Classification head options. */
  public static final class HeadOptions {
    private ClassificationSpec.Pooling pooling = ClassificationSpec.Pooling.MEAN;
    private String output = "";

    public HeadOptions pooling(ClassificationSpec.Pooling value) {
      pooling = value;
      return this;
    }

    public HeadOptions output(String value) {
      output = value;
      return this;
    }

    public ClassificationSpec.Pooling getPooling() {
      return pooling;
    }

    public void setPooling(ClassificationSpec.Pooling value) {
      pooling = value;
    }

    public String getOutput() {
      return output;
    }

    public void setOutput(String value) {
      output = value;
    }
  }

  /** AdamW options; the learning rate is given per step at run time. */
  public static final class AdamWOptions {
    private double beta1 = AdamWSpec.DEFAULT.beta1();
    private double beta2 = AdamWSpec.DEFAULT.beta2();
    private double epsilon = AdamWSpec.DEFAULT.epsilon();
    private double weightDecay = AdamWSpec.DEFAULT.weightDecay();

    public AdamWOptions beta1(double v) {
      beta1 = v;
      return this;
    }

    public AdamWOptions beta2(double v) {
      beta2 = v;
      return this;
    }

    public AdamWOptions epsilon(double v) {
      epsilon = v;
      return this;
    }

    public AdamWOptions weightDecay(double v) {
      weightDecay = v;
      return this;
    }

    public double getBeta1() {
      return beta1;
    }

    public void setBeta1(double v) {
      beta1 = v;
    }

    public double getBeta2() {
      return beta2;
    }

    public void setBeta2(double v) {
      beta2 = v;
    }

    public double getEpsilon() {
      return epsilon;
    }

    public void setEpsilon(double v) {
      epsilon = v;
    }

    public double getWeightDecay() {
      return weightDecay;
    }

    public void setWeightDecay(double v) {
      weightDecay = v;
    }
  }
}
