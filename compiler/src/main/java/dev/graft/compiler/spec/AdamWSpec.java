package dev.graft.compiler.spec;

/** AdamW hyper-parameters baked into the training step (the learning rate is an input). */
public record AdamWSpec(double beta1, double beta2, double epsilon, double weightDecay) {
  public static final AdamWSpec DEFAULT = new AdamWSpec(0.9, 0.999, 1e-8, 0.01);
}
