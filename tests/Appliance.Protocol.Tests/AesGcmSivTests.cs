using Appliance.Protocol.Crypto;
using CsCheck;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Modes;
using Org.BouncyCastle.Crypto.Parameters;

namespace Appliance.Protocol.Tests;

/// <summary>
/// AEAD_AES_128_GCM_SIV (RFC 8452), both paths (AES-NI with PCLMULQDQ, and the platform's AES with the
/// software POLYVAL), against the RFC's Appendix C.1 vectors, its worked example and its POLYVAL
/// example, and against BouncyCastle's GcmSivBlockCipher on random inputs.
/// </summary>
public sealed class AesGcmSivTests
{
    private static byte[] H(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    /// <summary>true: AES-NI and PCLMULQDQ (where the CPU has them); false: the portable path.</summary>
    private static bool[] Hardware => AesGcmSiv.IsHardwareAccelerated ? [true, false] : [false];

    public static TheoryData<bool> Paths => [.. Hardware];

    /// <summary>RFC 8452 Appendix C.1 (key, nonce, AAD, plaintext, result = ciphertext ‖ tag); the last row is the §8 worked example ("Hello world").</summary>
    public static TheoryData<string, string, string, string, string> Vectors => new()
    {
        { "01000000000000000000000000000000", "030000000000000000000000", "", "", "dc20e2d83f25705bb49e439eca56de25" },
        { "01000000000000000000000000000000", "030000000000000000000000", "01", "020000000000000000000000",
            "296c7889fd99f41917f4462008299c5102745aaa3a0c469fad9e075a" },
        { "01000000000000000000000000000000", "030000000000000000000000", "", "0100000000000000000000000000000002000000000000000000000000000000",
            "84e07e62ba83a6585417245d7ec413a9fe427d6315c09b57ce45f2e3936a94451a8e45dcd4578c667cd86847bf6155ff" },
        { "01000000000000000000000000000000", "030000000000000000000000", "01",
            "02000000000000000000000000000000030000000000000000000000000000000400000000000000000000000000000005000000000000000000000000000000",
            "2f5c64059db55ee0fb847ed513003746aca4e61c711b5de2e7a77ffd02da42feec601910d3467bb8b36ebbaebce5fba30d36c95f48a3e7980f0e7ac299332a80cdc46ae475563de037001ef84ae21744" },
        { "f901cfe8a69615a93fdf7a98cad48179", "6245709fb18853f68d833640", "7576f7028ec6eb5ea7e298342a94d4b202b370ef9768ec6561c4fe6b7e7296fa859c21",
            "e42a3c02c25b64869e146d7b233987bddfc240871d", "391cc328d484a4f46406181bcd62efd9b3ee197d052d15506c84a9edd65e13e9d24a2a6e70" },
        { "36864200e0eaf5284d884a0e77d31646", "bae8e37fc83441b16034566b", "46bb91c3c5", "7a806c", "af60eb711bd85bc1e4d3e0a462e074eea428a8" },
        { "ee8e1ed9ff2540ae8f2ba9f50bc2f27c", "752abad3e0afb5f434dc4310", "6578616d706c65", "48656c6c6f20776f726c64",
            "5d349ead175ef6b1def6fd4fbcdeb7e4793f4a1d7e4faa70100af1" },
    };

    public static IEnumerable<object[]> VectorsOnEachPath =>
        from v in Vectors from bool hardware in Hardware select (object[])[.. v, hardware];

    [Theory]
    [MemberData(nameof(VectorsOnEachPath))]
    public void Rfc8452Vectors_SealAndOpen(string key, string nonce, string aad, string plaintext, string result, bool hardware)
    {
        var aead = new AesGcmSiv(H(key), hardware);
        byte[] sealedOutput = new byte[H(plaintext).Length + AesGcmSiv.TagLength];
        aead.Encrypt(H(aad), H(nonce), H(plaintext), sealedOutput);
        Assert.Equal(H(result), sealedOutput);

        byte[] opened = new byte[H(plaintext).Length];
        Assert.True(aead.Decrypt(H(aad), H(nonce), H(result), opened));
        Assert.Equal(H(plaintext), opened);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void CounterWrapsModulo2To32_WithinTheFirstWordOnly(bool hardware)
    {
        // A tag of ffffffff 00…: the second keystream block's counter wraps to 00000000 (RFC 8452 §4:
        // the counter is the first 32 bits, little-endian, mod 2^32; nothing carries into byte 4).
        var aead = new AesGcmSiv(new byte[16], hardware);
        byte[] plaintext = H("00000000000000000000000000000000 13c635c26c86ef7f6402976842f34f30");
        byte[] output = new byte[plaintext.Length + 16];
        aead.Encrypt([], new byte[12], plaintext, output);
        Assert.Equal(H("d3165b5b1a183b5429ea0d33ad4eb0eb79ab692dbb7f0ea20b06b24de0b95bd9ffffffff000000000000000000000000"), output);
    }

    [Fact]
    public void Polyval_AppendixA_AndTheFieldExample()
    {
        static UInt128 V(string hex) => System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(H(hex));
        UInt128 h = V("25629347589242761d31f826ba4b757b");
        UInt128 s = AesGcmSiv.DotPortable(V("4f4f95668c83dfb6401762bb2d01a262"), h);
        s = AesGcmSiv.DotPortable(s ^ V("d1a24ddd2721d006bbe45f20d3c9f362"), h);
        Assert.Equal(V("f7a3b47b846119fae5b7866cf5e5b77e"), s);
        // §7: dot(a, b) = a · b · x^-128.
        Assert.Equal(V("ebe563401e7e91ea3ad6426b8140c394"), AesGcmSiv.DotPortable(V("66e94bd4ef8a2c3b884cfa59ca342b2e"), V("ff000000000000000000000000000000")));
    }

    [Fact]
    public void RandomInputs_BothPathsAndBouncyCastle_Agree_AndRoundTripInPlace() =>
        Gen.Select(Gen.Byte.Array[16], Gen.Byte.Array[12], Gen.Byte.Array[0, 300], Gen.Byte.Array[0, 300]).Sample((key, nonce, aad, plaintext) =>
        {
            var bc = new GcmSivBlockCipher(new AesEngine());
            bc.Init(true, new AeadParameters(new KeyParameter(key), 128, nonce, aad));
            byte[] expected = new byte[bc.GetOutputSize(plaintext.Length)];
            int n = bc.ProcessBytes(plaintext, 0, plaintext.Length, expected, 0);
            bc.DoFinal(expected, n);
            foreach (bool hardware in Hardware)
            {
                var aead = new AesGcmSiv(key, hardware);
                byte[] buffer = new byte[plaintext.Length + 16];
                plaintext.CopyTo(buffer, 0);
                aead.Encrypt(aad, nonce, buffer.AsSpan(0, plaintext.Length), buffer); // in place
                Assert.Equal(expected, buffer);
                Assert.True(aead.Decrypt(aad, nonce, buffer, buffer)); // in place
                Assert.Equal(plaintext, buffer[..plaintext.Length]);
            }
        }, iter: 500);

    [Fact]
    public void HardwarePath_AllocatesNothing_PerOperation()
    {
        Assert.True(AesGcmSiv.IsHardwareAccelerated, "this x86-64 host has no AES-NI with PCLMULQDQ: the allocation-free path cannot be checked");
        var aead = new AesGcmSiv(new byte[16]);
        byte[] aad = new byte[48], nonce = new byte[12], plaintext = new byte[200], output = new byte[216], opened = new byte[200];
        aead.Encrypt(aad, nonce, plaintext, output);
        Assert.True(aead.Decrypt(aad, nonce, output, opened));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            aead.Encrypt(aad, nonce, plaintext, output);
            aead.Decrypt(aad, nonce, output, opened);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void AnyChangedBit_OrAnotherNonceLength_IsRefused_AndThePlaintextCleared(bool hardware)
    {
        var aead = new AesGcmSiv(H("ee8e1ed9ff2540ae8f2ba9f50bc2f27c"), hardware);
        byte[] nonce = H("752abad3e0afb5f434dc4310"), aad = "example"u8.ToArray(), sealedOutput = H("5d349ead175ef6b1def6fd4fbcdeb7e4793f4a1d7e4faa70100af1");
        byte[] opened = new byte[sealedOutput.Length - 16];
        for (int bit = 0; bit < sealedOutput.Length * 8; bit++)
        {
            byte[] tampered = (byte[])sealedOutput.Clone();
            tampered[bit / 8] ^= (byte)(1 << (bit % 8));
            opened.AsSpan().Fill(0xAA);
            Assert.False(aead.Decrypt(aad, nonce, tampered, opened));
            Assert.All(opened, b => Assert.Equal(0, b));
        }
        Assert.False(aead.Decrypt("exampld"u8, nonce, sealedOutput, opened));
        Assert.False(aead.Decrypt(aad, [.. nonce, 0], sealedOutput, opened));
        Assert.False(aead.Decrypt(aad, nonce.AsSpan(0, 11), sealedOutput, opened));
        Assert.Throws<ArgumentException>(() => aead.Encrypt(aad, new byte[16], [], new byte[16]));
        Assert.Throws<ArgumentException>(() => new AesGcmSiv(new byte[32]));
    }
}
