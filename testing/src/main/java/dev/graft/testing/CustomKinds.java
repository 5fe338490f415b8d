package dev.graft.testing;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.op.CustomAdapterKind;
import dev.graft.compiler.op.Definition;
import dev.graft.compiler.op.Param;
import dev.graft.compiler.op.Tensor;
import dev.graft.spec.manifest.Init;
import java.util.List;

/**
 * Adapter kinds written with the op DSL for the tests, registered as services in the test
 * resources' {@code META-INF/services/dev.graft.compiler.kinds.AdapterKind} (so the compiler finds
 * them as it finds a user's). The faulty ones are there to be declared in error tests.
 */
public final class CustomKinds {
  private CustomKinds() {}

  /** Options rank (1..64, default 2) and alpha (default 4). */
  static List<AdapterOption> rankAndAlpha() {
    return List.of(AdapterOption.integer("rank", 2, 1, 64, "rank of the update"),
        AdapterOption.positive("alpha", 4, "the update is scaled by alpha / rank"));
  }

  /** A base with the options above; subclasses give id and definition. */
  abstract static class TestKind extends CustomAdapterKind {
    @Override
    public String displayName() {
      return "Test " + id();
    }

    @Override
    public String annotation() {
      return "dev.graft.compiler.test." + id();
    }

    @Override
    public List<AdapterOption> options() {
      return rankAndAlpha();
    }
  }

  /** Gated LoRA: {@code v + (alpha/r)·(x·A·B) ⊙ sigmoid(gate)}, one gate per output unit. */
  public static final class GatedLora extends TestKind {
    @Override
    public String id() {
      return "test_gated_lora";
    }

    @Override
    public String displayName() {
      return "Gated LoRA";
    }

    @Override
    protected Tensor define(Definition d) {
      Param a = d.param("A", d.inWidth(), d.option("rank")).kaimingUniform();
      Param b = d.param("B", d.option("rank"), d.outWidth());
      Param gate = d.param("gate", d.outWidth()).noDecay();
      double scale = d.doubleOption("alpha") / d.intOption("rank");
      return d.value().plus(d.input().matmul(a).matmul(b).times(scale).times(gate.sigmoid()));
    }
  }

  /**
   * LoRA written with the DSL, saved as PEFT saves LoRA: {@code v + (alpha/r)·x·A·B} (the
   * built-in adds its update before the bias: the same function).
   */
  public static final class DslLora extends TestKind {
    @Override
    public String id() {
      return "test_dsl_lora";
    }

    @Override
    public String defaultTarget(dev.graft.compiler.spec.AdapterSpec spec) {
      return LoraKind.DEFAULT_TARGET;
    }

    @Override
    protected Tensor define(Definition d) {
      long r = d.option("rank");
      Param a = d.param("A", d.inWidth(), r).init(Init.KAIMING_UNIFORM).saveTransposed("lora_A.weight");
      Param b = d.param("B", r, d.outWidth()).zeros().saveTransposed("lora_B.weight");
      return d.value().plus(d.input().matmul(a).matmul(b).times(d.doubleOption("alpha") / r));
    }
  }

  /**
   * Slices and division: {@code h = x·A} of width 2r, split in halves u and g, {@code v + (u /
   * (1 + g²))·B − (Σ v[1, 3]/s)·spread}, with s a positive scale (exp of a parameter).
   */
  public static final class SliceDiv extends TestKind {
    @Override
    public String id() {
      return "test_slice_div";
    }

    @Override
    protected Tensor define(Definition d) {
      long r = d.option("rank");
      Tensor h = d.input().matmul(d.param("A", d.inWidth(), 2 * r).normal(0.1));
      Tensor u = h.get(0, r);
      Tensor g = h.get(r, 2 * r);
      Tensor s = d.param("logScale", 1).exp();
      Tensor update = u.div(g.times(g).plus(1)).matmul(d.param("B", r, d.outWidth()));
      // Σ v[1, 3] / s is one number per token: spread over the columns by a vector, or a layer norm
      // after the site would cancel it.
      Tensor shift = d.value().get(1, 3).sum().div(s).times(d.param("spread", d.outWidth()).normal(0.1));
      return d.value().plus(update).minus(shift);
    }
  }

  /**
   * Most other ops at once: layer norm, softmax over the value, mean, sum, tanh, relu, sqrt, log,
   * transpose, unary minus and dropout (0 here, so the whole step is deterministic).
   */
  public static final class Mixture extends TestKind {
    @Override
    public String id() {
      return "test_mixture";
    }

    @Override
    protected Tensor define(Definition d) {
      Tensor v = d.value();
      Tensor normed = v.layerNorm(d.param("ln.scale", d.outWidth()).ones(), d.param("ln.bias", d.outWidth()).noDecay());
      Tensor attention = normed.softmax();
      Tensor centred = v.minus(v.mean());
      Tensor energy = centred.times(centred).sum().plus(1).sqrt().log();
      Param w = d.param("W", d.option("rank"), d.outWidth()).uniform(0.5);
      // [.., out] · [out, r] via the transpose of W [r, out].
      Tensor mixed = attention.matmul(w.transpose()).tanh().matmul(w).relu().dropout(0);
      return v.plus(mixed.times(energy)).plus(normed.unaryMinus().times(d.constant(0.1)));
    }
  }

  /** Faulty: multiplies x [.., in] by a parameter [rank] (GRAFT090). */
  public static final class BadShape extends TestKind {
    @Override
    public String id() {
      return "test_bad_shape";
    }

    @Override
    protected Tensor define(Definition d) {
      return d.value().plus(d.input().times(d.param("s", d.option("rank"))));
    }
  }

  /** Faulty: reads an option the kind does not declare (GRAFT091). */
  public static final class UnknownOption extends TestKind {
    @Override
    public String id() {
      return "test_unknown_option";
    }

    @Override
    protected Tensor define(Definition d) {
      return d.value().times(d.param("s", d.option("rnk")));
    }
  }

  /** Faulty: declares parameter "s" twice (GRAFT092). */
  public static final class DuplicateParameter extends TestKind {
    @Override
    public String id() {
      return "test_duplicate_parameter";
    }

    @Override
    protected Tensor define(Definition d) {
      Param first = d.param("s", d.outWidth());
      return d.value().times(first).plus(d.param("s", 1));
    }
  }

  /** Faulty: returns the low-rank update [.., rank] instead of the adapted value (GRAFT093). */
  public static final class WrongResult extends TestKind {
    @Override
    public String id() {
      return "test_wrong_result";
    }

    @Override
    protected Tensor define(Definition d) {
      return d.input().matmul(d.param("A", d.inWidth(), d.option("rank")));
    }
  }

  /** Has the built-in LoRA's id: only ever loaded by the duplicate-id test's own class loader. */
  public static final class DuplicateOfLora extends TestKind {
    @Override
    public String id() {
      return "lora";
    }

    @Override
    protected Tensor define(Definition d) {
      return d.value();
    }
  }

  /**
   * LoRA's update counted twice, once through {@code stopGradient}: {@code v + u + stopGradient(u)},
   * {@code u = (alpha/r)·x·A·B}. Its forward pass is {@link DslLora}'s at twice alpha, its gradient
   * half of that one's.
   */
  public static final class DetachedLora extends TestKind {
    @Override
    public String id() {
      return "test_detached_lora";
    }

    @Override
    protected Tensor define(Definition d) {
      long r = d.option("rank");
      Param a = d.param("A", d.inWidth(), r).init(Init.KAIMING_UNIFORM).saveTransposed("lora_A.weight");
      Param b = d.param("B", r, d.outWidth()).zeros().saveTransposed("lora_B.weight");
      Tensor u = d.input().matmul(a).matmul(b).times(d.doubleOption("alpha") / r);
      return d.value().plus(u).plus(u.stopGradient());
    }
  }
}
