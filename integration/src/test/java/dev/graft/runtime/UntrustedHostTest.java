package dev.graft.runtime;

import static dev.graft.UntrustedHosts.DENSE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.UntrustedHosts;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A host ONNX from anyone, at run time: external data only as ONNX Runtime allows it (finding 1
 * of issue 15), and the host compared with the one the graft was compiled against (finding 6).
 * The graft is compiled against a good host; the hostile one is given at open.
 */
class UntrustedHostTest {
  @TempDir Path dir;
  @TempDir Path outside;

  private static final ModelProto GOOD = UntrustedHosts.model(1);
  private CompiledGraft graft;
  private Path good;

  @BeforeEach
  void compile() throws Exception {
    good = UntrustedHosts.write(outside, "good.onnx", GOOD);
    graft = Graft.host(good).lora(DENSE, o -> o.rank(2)).classification(2).compile();
  }

  private AdapterModel open(Path host, boolean changeAllowed) {
    ModelOptions o = ModelOptions.defaults().withHost(host);
    return AdapterModel.open(Graft.graphs(graft), changeAllowed ? o.withHostChangeAllowed() : o);
  }

  /** Opening with the hostile host fails; the exception (the host change is allowed, so only the data is at fault). */
  private GraftException refused(String location, String offset, String length) throws Exception {
    Path host = UntrustedHosts.write(dir, "host.onnx", UntrustedHosts.externalDense(GOOD, location, offset, length));
    return assertThrows(GraftException.class, () -> open(host, true).close());
  }

  @Test
  void externalDataInsideTheFolderIsRead() throws Exception {
    Files.write(dir.resolve("weights.bin"), UntrustedHosts.denseBytes(GOOD));
    Path host = UntrustedHosts.write(dir, "host.onnx", UntrustedHosts.externalDense(GOOD, "./weights.bin", "0", "1024"));
    float[][] expected;
    try (AdapterModel m = open(good, false)) {
      expected = m.predict(UntrustedHosts.inputs());
    }
    try (AdapterModel m = open(host, true)) {
      assertArrayEquals(expected[0], m.predict(UntrustedHosts.inputs())[0], 0f);
    }
  }

  @Test
  void finding1_absoluteExternalDataPathIsRefusedAtOpen() throws Exception {
    Path secret = outside.resolve("secret.bin");
    Files.write(secret, UntrustedHosts.denseBytes(GOOD));
    GraftException e = refused(secret.toString(), "0", "1024");
    assertEquals(RuntimeErrorCode.EXTERNAL_DATA, e.getErrorCode());
    assertTrue(e.getMessage().startsWith("[GRAFT-R010] "), e.getMessage());
    assertTrue(e.getMessage().contains("a location that is not allowed"), e.getMessage());
    assertFalse(e.getMessage().contains("exist") || e.getMessage().contains("size"), e.getMessage());
  }

  @Test
  void finding1_parentExternalDataPathIsRefusedAtOpen() throws Exception {
    Path secret = dir.getParent().resolve("graft-finding1-run-" + System.nanoTime() + ".bin");
    Files.write(secret, UntrustedHosts.denseBytes(GOOD));
    try {
      GraftException e = refused("../" + secret.getFileName(), null, null);
      assertEquals("GRAFT-R010", e.getCode());
      GraftException missing = refused("../no-such-file.bin", null, null);
      assertEquals(e.getMessage().replace(secret.getFileName().toString(), "no-such-file.bin"), missing.getMessage());
      assertEquals("GRAFT-R010", refused("a/../../" + secret.getFileName(), null, null).getCode());
    } finally {
      Files.delete(secret);
    }
  }

  @Test
  void finding1_symlinkEscapeIsRefusedAtOpen() throws Exception {
    Path secret = outside.resolve("secret.bin");
    Files.write(secret, UntrustedHosts.denseBytes(GOOD));
    Files.createSymbolicLink(dir.resolve("weights.bin"), secret);
    Files.createSymbolicLink(dir.resolve("dangling.bin"), outside.resolve("no-such-file.bin"));
    Files.createSymbolicLink(dir.resolve("linked"), outside);
    GraftException e = refused("weights.bin", "0", "1024");
    assertEquals(RuntimeErrorCode.EXTERNAL_DATA, e.getErrorCode());
    GraftException dangling = refused("dangling.bin", "0", "1024");
    assertEquals(e.getMessage().replace("weights.bin", "dangling.bin"), dangling.getMessage());
    assertEquals(RuntimeErrorCode.EXTERNAL_DATA, refused("linked/secret.bin", "0", "1024").getErrorCode());
  }

  @Test
  void finding1_badExternalOffsetOrLengthIsACodedErrorAtOpen() throws Exception {
    Files.write(dir.resolve("weights.bin"), UntrustedHosts.denseBytes(GOOD));
    GraftException notANumber = refused("weights.bin", "12x", null);
    assertEquals(RuntimeErrorCode.FORMAT, notANumber.getErrorCode());
    assertTrue(notANumber.getMessage().contains("external data offset '12x', not a number"), notANumber.getMessage());
    assertEquals(RuntimeErrorCode.FORMAT, refused("weights.bin", "-4", null).getErrorCode());
    assertEquals(RuntimeErrorCode.FORMAT, refused("weights.bin", "0", "99999999999999999999").getErrorCode());
    GraftException pastTheEnd = refused("weights.bin", "4", "1024");
    assertEquals(RuntimeErrorCode.EXTERNAL_DATA, pastTheEnd.getErrorCode());
    assertTrue(pastTheEnd.getMessage().contains("(offset 4, 1024 bytes) does not fit its data file"), pastTheEnd.getMessage());
    assertFalse(pastTheEnd.getMessage().contains("1028"), pastTheEnd.getMessage());
    assertEquals(RuntimeErrorCode.EXTERNAL_DATA, refused("weights.bin", String.valueOf(Long.MAX_VALUE), null).getErrorCode());
  }

  @Test
  void finding6_hostShaMismatchIsRefused() throws Exception {
    Path other = UntrustedHosts.write(dir, "other.onnx", UntrustedHosts.model(2));
    String compiledAgainst = graft.manifest().getHostSha256();
    assertEquals(sha256(Files.readAllBytes(good)), compiledAgainst);
    String given = sha256(Files.readAllBytes(other));
    GraftException e = assertThrows(GraftException.class, () -> open(other, false).close());
    assertEquals(RuntimeErrorCode.HOST_CHANGED, e.getErrorCode());
    assertTrue(e.getMessage().startsWith("[GRAFT-R011] host model " + other + " has SHA-256 " + given + ", but "),
        e.getMessage());
    assertTrue(e.getMessage().contains("compiled against a host with SHA-256 " + compiledAgainst), e.getMessage());
    assertTrue(e.getMessage().contains("ModelOptions.withHostChangeAllowed()"), e.getMessage());
    // the host it was compiled against opens
    try (AdapterModel m = open(good, false)) {
      assertEquals(2, m.predict(UntrustedHosts.inputs())[0].length);
    }
  }

  @Test
  void aDeliberatelyChangedHostOpensWithTheOptOut() throws Exception {
    Path other = UntrustedHosts.write(dir, "other.onnx", UntrustedHosts.model(2));
    assertFalse(ModelOptions.defaults().hostChangeAllowed());
    assertTrue(ModelOptions.defaults().withHostChangeAllowed().withSeed(3).hostChangeAllowed());
    float[][] onGood;
    try (AdapterModel m = open(good, false)) {
      onGood = m.predict(UntrustedHosts.inputs());
    }
    try (AdapterModel m = open(other, true)) {
      float[][] onOther = m.predict(UntrustedHosts.inputs());
      assertEquals(2, onOther[0].length);
      assertFalse(java.util.Arrays.equals(onGood[0], onOther[0]), "the other host's weights were used");
    }
  }

  private static String sha256(byte[] bytes) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
  }
}
