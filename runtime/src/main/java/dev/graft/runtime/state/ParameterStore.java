package dev.graft.runtime.state;

import dev.graft.spec.manifest.Manifest;

/** Trainable parameter values by manifest name, read and written as float arrays (row-major, manifest shape). */
public interface ParameterStore {
  /** The manifest that names the parameters and their shapes. */
  Manifest getManifest();

  /** A copy of the current values of parameter {@code name}. */
  float[] getParameter(String name);

  /** Replaces the current values of parameter {@code name}; the length must match its shape. */
  void setParameter(String name, float[] values);
}
