package dev.graft.processor;

import com.google.auto.service.AutoService;
import com.palantir.javapoet.ClassName;
import dev.graft.compiler.CompileResult;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.passes.SavedActivations;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.processor.read.Annotations;
import dev.graft.processor.read.DeclarationReader;
import dev.graft.processor.validate.DeclarationChecks;
import dev.graft.processor.validate.HostResolver;
import dev.graft.processor.validate.ProcessorDiagnostics;
import dev.graft.processor.write.GraftClassWriter;
import dev.graft.processor.write.ResourceWriter;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import javax.annotation.processing.AbstractProcessor;
import javax.annotation.processing.ProcessingEnvironment;
import javax.annotation.processing.Processor;
import javax.annotation.processing.RoundEnvironment;
import javax.lang.model.SourceVersion;
import javax.lang.model.element.Element;
import javax.lang.model.element.PackageElement;
import javax.lang.model.element.TypeElement;
import org.jspecify.annotations.Nullable;

/**
 * The javac front-end of Graft. For each interface annotated {@code @Graft}: check its shape
 * (validate) → read it into a {@link GraftSpec} (read) → find and read its host (validate) →
 * compile it ({@link GraftCompiler}, in {@code dsl}) → write its ONNX resources and its typed
 * {@code <Name>Graft} class (write). Every error of a declaration is reported on the annotation
 * value at fault; a bad declaration never stops the others, and nothing is thrown out of
 * {@link #process}.
 *
 * <p>Gradle incremental processing: declared <em>aggregating</em> in {@code
 * META-INF/gradle/incremental.annotation.processors}. Each generated file has exactly one
 * originating element, but what is generated depends on the host model file, which is not
 * reachable from the annotated element's AST — the condition Gradle sets for isolating
 * processors. Neither category makes Gradle track the host file: after replacing a host in
 * place, rebuild cleanly (or declare the host as an input of the compile task).
 */
@AutoService(Processor.class)
public final class GraftProcessor extends AbstractProcessor {
  private Reporter reporter;
  private DeclarationReader reader;
  private HostResolver hosts;

  @Override
  public synchronized void init(ProcessingEnvironment env) {
    super.init(env);
    reporter = new Reporter(env);
    reader = new DeclarationReader(env.getElementUtils());
    hosts = new HostResolver(env.getFiler(), env.getOptions().get(HostResolver.HOST_DIR_OPTION));
  }

  @Override
  public Set<String> getSupportedAnnotationTypes() {
    return Set.of(Annotations.GRAFT);
  }

  @Override
  public Set<String> getSupportedOptions() {
    return Set.of(HostResolver.HOST_DIR_OPTION);
  }

  @Override
  public SourceVersion getSupportedSourceVersion() {
    return SourceVersion.latestSupported();
  }

  @Override
  public boolean process(Set<? extends TypeElement> annotations, RoundEnvironment round) {
    TypeElement graft = processingEnv.getElementUtils().getTypeElement(Annotations.GRAFT);
    if (graft == null) {
      return false;
    }
    for (Element element : round.getElementsAnnotatedWith(graft)) {
      try {
        process(element);
      } catch (dev.graft.compiler.kinds.AdapterKindLoadException e) {
        reporter.error(e.diagnostic(), element); // a kind on the processor path that cannot be registered
      } catch (RuntimeException | LinkageError e) {
        reporter.error(ProcessorDiagnostics.internalError(null, element.getSimpleName().toString(), e), element);
      }
    }
    return false;
  }

  private void process(Element element) {
    List<Diagnostic> shape = DeclarationChecks.check(element);
    if (!shape.isEmpty()) {
      shape.forEach(d -> reporter.error(d, element));
      return;
    }
    TypeElement type = (TypeElement) element;
    Optional<DeclarationReader.Read> read = reader.read(type);
    if (read.isEmpty()) {
      return; // a malformed annotation value, which javac reports itself
    }
    GraftSpec spec = read.get().spec();
    List<Diagnostic> readErrors = read.get().errors();
    readErrors.forEach(d -> reporter.error(d, element));
    HostResolver.Result host = hosts.resolve(spec);
    if (host.error() != null) {
      reporter.error(host.error(), element);
      return;
    }
    CompileResult result = compile(spec, java.util.Objects.requireNonNull(host.host()), type);
    if (result == null) {
      return;
    }
    if (!result.ok()) {
      result.diagnostics().forEach(d -> reporter.error(d, element));
      return;
    }
    if (!readErrors.isEmpty()) {
      return; // the rest compiles, but what did not parse is missing from it
    }
    CompiledGraft graft = result.orThrow();
    List<Diagnostic> unfed = ProcessorDiagnostics.unfedInputs(spec.source(), graft.manifest());
    if (!unfed.isEmpty()) {
      unfed.forEach(d -> reporter.error(d, element));
      return;
    }
    write(type, spec, graft);
    reporter.note(spec.name() + ": the training step keeps " + SavedActivations.perExample(
        graft.manifest().getSavedActivationsList(), batchSymbol(graft)) + " for its backward pass", element);
  }

  /** The symbol of the host's batch dimension: dimension 0 of its first input. */
  private static String batchSymbol(CompiledGraft graft) {
    var inputs = graft.manifest().getInputsList();
    return inputs.isEmpty() || inputs.get(0).getShapeCount() == 0 ? "" : inputs.get(0).getShape(0).getSymbol();
  }

  private @Nullable CompileResult compile(GraftSpec spec, HostModel host, TypeElement type) {
    try {
      return GraftCompiler.compile(spec, host);
    } catch (RuntimeException e) {
      reporter.error(ProcessorDiagnostics.internalError(spec.source(), spec.name(), e), type);
      return null;
    }
  }

  private void write(TypeElement type, GraftSpec spec, CompiledGraft graft) {
    String packageName = packageOf(type);
    try {
      ResourceWriter.write(processingEnv.getFiler(), packageName, graft, type);
    } catch (ResourceWriter.ResourceWriteException e) {
      reporter.error(ProcessorDiagnostics.writeFailed(spec.source(), e.file(), String.valueOf(e.getCause())), type);
      return;
    }
    ClassName className = ClassName.get(packageName, spec.name() + GraftClassWriter.SUFFIX);
    try {
      new GraftClassWriter(className, type.getQualifiedName().toString(), graft.manifest())
          .write(processingEnv.getFiler(), type);
    } catch (IOException e) {
      reporter.error(ProcessorDiagnostics.writeFailed(spec.source(), className.canonicalName(), String.valueOf(e)), type);
    }
  }

  private String packageOf(TypeElement type) {
    PackageElement p = processingEnv.getElementUtils().getPackageOf(type);
    return p.isUnnamed() ? "" : p.getQualifiedName().toString();
  }
}
