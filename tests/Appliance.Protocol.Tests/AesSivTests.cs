using System.Reflection;
using System.Runtime.Intrinsics;
using Appliance.Protocol.Crypto;
using CsCheck;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace Appliance.Protocol.Tests;

public class AesSivTests
{
    private static byte[] H(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    [Fact]
    public void AesNi_Fips197AppendixC_OneLaneAndEveryLane()
    {
        Vector128<byte> plaintext = Vector128.Create(H("00112233445566778899aabbccddeeff"));
        Vector128<byte> key128 = Vector128.Create(H("000102030405060708090a0b0c0d0e0f"));
        byte[] key256 = H("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        var schedule = default(AesEncryptor.RoundKeys);
        AesEncryptor.Expand128(key128, ref schedule);
        Assert.Equal(H("69c4e0d86a7b0430d8cdb78070b4c55a"), Bytes(AesEncryptor.Encrypt(in schedule, 10, plaintext)));
        AesEncryptor.Expand256(Vector128.Create(key256[..16]), Vector128.Create(key256[16..]), ref schedule);
        Assert.Equal(H("8ea2b7ca516745bfeafc49904b496089"), Bytes(AesEncryptor.Encrypt(in schedule, 14, plaintext)));

        // All lanes' AES-128 schedules and blocks side by side, the FIPS key in one lane at a time.
        for (int lane = 0; lane < AesSivLanes.Width; lane++)
        {
            var keys = default(LaneBlocks);
            var blocks = default(LaneBlocks);
            keys[lane] = key128;
            blocks[lane] = plaintext;
            var schedules = default(LaneRoundKeys);
            AesEncryptor.Expand128Lanes(ref schedules, in keys);
            AesEncryptor.EncryptLanes(in schedules, ref blocks, 10);
            Assert.Equal(H("69c4e0d86a7b0430d8cdb78070b4c55a"), Bytes(blocks[lane]));
            Assert.Equal(H("66e94bd4ef8a2c3b884cfa59ca342b2e"), Bytes(blocks[(lane + 1) % AesSivLanes.Width])); // AES-128(0, 0)
        }
    }

    private static byte[] Bytes(Vector128<byte> block)
    {
        var bytes = new byte[16];
        block.CopyTo(bytes);
        return bytes;
    }

    [Fact]
    public void Lanes_AreSupportedOnThisMachine_SoTheirTestsRunTheFastPath() => Assert.True(AesSivLanes.IsSupported);

    [Fact]
    public void LaneContainers_HaveOneFieldPerLane()
    {
        // Lanes<T> and SivBatch are written out field by field (C# has no inline array of a ref struct).
        const BindingFlags fields = BindingFlags.Instance | BindingFlags.NonPublic;
        Assert.Equal(AesSivLanes.Width, typeof(Lanes<int>).GetFields(fields).Length);
        Assert.Equal(AesSivLanes.Width, typeof(SivBatch).GetFields(fields).Count(f => f.FieldType == typeof(SivOperation)));
        Assert.Equal(AesSivLanes.WrittenOutWidth, AesSivLanes.Width);
    }

    [Theory]
    [InlineData("", "bb1d6929e95937287fa37d129b756746")]
    [InlineData("6bc1bee22e409f96e93d7e117393172a", "070a16b46b4d4144f79bdd9dd04a287c")]
    [InlineData("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411", "dfa66747de9ae63030ca32611497c827")]
    [InlineData("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710", "51f0bebf7e3b9d92fc49741779363cfe")]
    public void Cmac_Rfc4493Vectors(string message, string mac)
    {
        // CMAC runs with the first half of the SIV key; put the RFC 4493 key there.
        var siv = new AesSiv(H("2b7e151628aed2a6abf7158809cf4f3c" + "00000000000000000000000000000000"));
        var output = new byte[16];
        siv.Cmac(H(message), output);
        Assert.Equal(H(mac), output);
    }

    [Fact]
    public void Siv_Rfc5297A1_Deterministic()
    {
        var siv = new AesSiv(H("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"));
        byte[] plaintext = H("112233445566778899aabbccddee");
        var output = new byte[16 + plaintext.Length];
        siv.EncryptComponents([H("101112131415161718191a1b1c1d1e1f2021222324252627")], plaintext, output);
        Assert.Equal(H("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"), output);
    }

    [Fact]
    public void Siv_Rfc5297A2_NonceBased()
    {
        var siv = new AesSiv(H("7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f"));
        byte[] ad1 = H("00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100");
        byte[] ad2 = H("102030405060708090a0");
        byte[] nonce = H("09f911029d74e35bd84156c5635688c0");
        byte[] plaintext = H("7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553");
        var output = new byte[16 + plaintext.Length];
        siv.EncryptComponents([ad1, ad2, nonce], plaintext, output);
        Assert.Equal(H("7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d"), output);
    }

    [Fact]
    public void Siv_EmptyInput_IsCmacOfOne()
    {
        var siv = new AesSiv(H("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"));
        var output = new byte[16];
        siv.EncryptComponents([], [], output);
        Assert.Equal(H("f2007a5beb2b8900c588a7adf599f172"), output);
    }

    [Fact]
    public void Aead_EncryptThenDecrypt_RoundTripsAndRejectsTampering()
    {
        var siv = new AesSiv(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        byte[] ad = "an NTP header and extension fields"u8.ToArray();
        byte[] nonce = Enumerable.Range(100, 16).Select(i => (byte)i).ToArray();
        byte[] plaintext = Enumerable.Range(0, 104).Select(i => (byte)(i * 7)).ToArray();
        var sealedBytes = new byte[16 + plaintext.Length];
        siv.Encrypt(ad, nonce, plaintext, sealedBytes);
        var opened = new byte[plaintext.Length];
        Assert.True(siv.Decrypt(ad, nonce, sealedBytes, opened));
        Assert.Equal(plaintext, opened);

        // Every single-bit change in tag, ciphertext, AD or nonce is detected.
        for (int i = 0; i < sealedBytes.Length; i++)
        {
            sealedBytes[i] ^= 1;
            Assert.False(siv.Decrypt(ad, nonce, sealedBytes, opened));
            sealedBytes[i] ^= 1;
        }
        ad[3] ^= 0x40;
        Assert.False(siv.Decrypt(ad, nonce, sealedBytes, opened));
        ad[3] ^= 0x40;
        nonce[0] ^= 1;
        Assert.False(siv.Decrypt(ad, nonce, sealedBytes, opened));
    }

    [Fact]
    public void Aead_EqualsComponentsAdThenNonce_And512BitKeysWork()
    {
        byte[] key512 = Enumerable.Range(0, 64).Select(i => (byte)(255 - i)).ToArray();
        foreach (byte[] key in (byte[][])[key512[..32], key512])
        {
            var siv = new AesSiv(key);
            byte[] ad = [1, 2, 3], nonce = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6], plaintext = [];
            var a = new byte[16];
            var b = new byte[16];
            siv.Encrypt(ad, nonce, plaintext, a);
            siv.EncryptComponents([ad, nonce], plaintext, b);
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void Cmac_CrossCheckedAgainstBouncyCastle_Aes128AndAes256() =>
        Gen.Select(Gen.OneOf(Gen.Byte.Array[16], Gen.Byte.Array[32]), Gen.Byte.Array[0, 300]).Sample((key, message) =>
        {
            var bc = new CMac(new AesEngine());
            bc.Init(new KeyParameter(key));
            bc.BlockUpdate(message, 0, message.Length);
            var expected = new byte[16];
            bc.DoFinal(expected, 0);
            var actual = new byte[16];
            new AesSiv([.. key, .. new byte[key.Length]]).Cmac(message, actual);
            Assert.Equal(expected, actual);
        }, iter: 2000);

    [Fact]
    public void Aead_RandomInputs_RoundTripAndEqualTheComponentsForm() =>
        Gen.Select(Gen.OneOf(Gen.Byte.Array[32], Gen.Byte.Array[64]), Gen.Byte.Array[0, 300], Gen.Byte.Array[0, 40], Gen.Byte.Array[0, 300]).Sample((key, ad, nonce, plaintext) =>
        {
            var siv = new AesSiv(key);
            var a = new byte[16 + plaintext.Length];
            var b = new byte[16 + plaintext.Length];
            siv.Encrypt(ad, nonce, plaintext, a);
            siv.EncryptComponents([ad, nonce], plaintext, b);
            Assert.Equal(b, a);
            var opened = new byte[plaintext.Length];
            Assert.True(siv.Decrypt(ad, nonce, a, opened));
            Assert.Equal(plaintext, opened);
            // In place: the ciphertext over the plaintext, the SIV just before it.
            byte[] buffer = [.. new byte[16], .. plaintext];
            siv.Encrypt(ad, nonce, buffer.AsSpan(16), buffer);
            Assert.Equal(a, buffer);
            Assert.True(siv.Decrypt(ad, nonce, buffer, buffer.AsSpan(16)));
            Assert.Equal(plaintext, buffer[16..]);
        }, iter: 2000);

    [Fact]
    public void Siv_SharedBetweenThreads_GivesEachCallerItsOwnResult()
    {
        // A cookie master key's cipher is shared by every NTS-KE connection.
        var siv = new AesSiv(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        Parallel.For(0, 4000, i =>
        {
            byte[] ad = BitConverter.GetBytes(i), nonce = new byte[16], plaintext = [.. Enumerable.Range(i, 68).Select(b => (byte)b)];
            var sealedBytes = new byte[16 + plaintext.Length];
            siv.Encrypt(ad, nonce, plaintext, sealedBytes);
            var expected = new byte[sealedBytes.Length];
            new AesSiv(Enumerable.Range(0, 32).Select(b => (byte)b).ToArray()).Encrypt(ad, nonce, plaintext, expected);
            Assert.Equal(expected, sealedBytes);
            var opened = new byte[plaintext.Length];
            Assert.True(siv.Decrypt(ad, nonce, sealedBytes, opened));
            Assert.Equal(plaintext, opened);
        });
    }

    [Fact]
    public void Siv_SealAndOpen_UnderOneKey_AllocateNothing()
    {
        var siv = new AesSiv(new byte[32]);
        byte[] ad = new byte[68], nonce = new byte[16], plaintext = new byte[216], output = new byte[232], opened = new byte[216];
        siv.Encrypt(ad, nonce, plaintext, output);
        siv.Decrypt(ad, nonce, output, opened);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            plaintext[0] = (byte)i;
            siv.Encrypt(ad, nonce, plaintext, output);
            Assert.True(siv.Decrypt(ad, nonce, output, opened));
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>One random AES-SIV operation: key (256 or 512 bits), associated data, nonce, plaintext (some longer than the lanes' 512-byte keystream run), and whether to tamper with it.</summary>
    private static readonly Gen<(byte[] Key, byte[] Ad, byte[] Nonce, byte[] Plaintext, bool Tamper)> s_sivCase =
        Gen.Select(Gen.OneOf(Gen.Byte.Array[32], Gen.Byte.Array[64]), Gen.Byte.Array[0, 300], Gen.Byte.Array[0, 40], Gen.OneOf(Gen.Byte.Array[0, 300], Gen.Byte.Array[500, 1100]), Gen.Int[0, 3])
            .Select((key, ad, nonce, plaintext, t) => (key, ad, nonce, plaintext, t == 0));

    [Fact]
    public void Lanes_SealAndOpen_EqualTheReference_ForMixedKeysAndLengths() =>
        Gen.Select(s_sivCase.Array[1, AesSivLanes.Width], Gen.Bool).Sample((cases, shareKey) =>
        {
            if (shareKey)
            {
                // The common server case: several lanes under one (cookie) key.
                for (int i = 1; i < cases.Length; i++)
                {
                    cases[i].Key = cases[0].Key;
                }
            }
            var lanes = new AesSivLanes();
            byte[][] sealedByLanes = [.. cases.Select(c => new byte[16 + c.Plaintext.Length])];
            var batch = new SivBatch();
            // First the keys with no text (a tag alone: the lanes skip the CTR key schedule), then with text.
            byte[][] tags = [.. cases.Select(_ => new byte[16])];
            for (int i = 0; i < cases.Length; i++)
            {
                batch.Add(cases[i].Key, cases[i].Ad, cases[i].Nonce, [], tags[i]);
            }
            lanes.Seal(ref batch);
            for (int i = 0; i < cases.Length; i++)
            {
                var expected = new byte[16];
                new AesSiv(cases[i].Key).Encrypt(cases[i].Ad, cases[i].Nonce, [], expected);
                Assert.Equal(expected, tags[i]);
            }
            batch.Clear();
            for (int i = 0; i < cases.Length; i++)
            {
                batch.Add(cases[i].Key, cases[i].Ad, cases[i].Nonce, cases[i].Plaintext, sealedByLanes[i]);
            }
            lanes.Seal(ref batch);
            for (int i = 0; i < cases.Length; i++)
            {
                var expected = new byte[16 + cases[i].Plaintext.Length];
                new AesSiv(cases[i].Key).Encrypt(cases[i].Ad, cases[i].Nonce, cases[i].Plaintext, expected);
                Assert.Equal(expected, sealedByLanes[i]);
                if (cases[i].Tamper)
                {
                    sealedByLanes[i][sealedByLanes[i].Length / 2] ^= 0x01;
                }
            }
            byte[][] opened = [.. cases.Select(c => Enumerable.Repeat((byte)0xEE, c.Plaintext.Length).ToArray())];
            batch.Clear();
            for (int i = 0; i < cases.Length; i++)
            {
                batch.Add(cases[i].Key, cases[i].Ad, cases[i].Nonce, sealedByLanes[i], opened[i]);
            }
            lanes.Open(ref batch);
            for (int i = 0; i < cases.Length; i++)
            {
                Assert.Equal(!cases[i].Tamper, batch[i].Authentic);
                Assert.Equal(cases[i].Tamper ? new byte[cases[i].Plaintext.Length] : cases[i].Plaintext, opened[i]);
            }
        }, iter: 1500);

    [Fact]
    public void Lanes_SealInPlace_PutsTheSivBeforeTheCiphertext()
    {
        var lanes = new AesSivLanes();
        byte[] key = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];
        byte[] ad = [1, 2, 3], nonce = new byte[16], plaintext = [.. Enumerable.Range(0, 108).Select(i => (byte)(i * 7))];
        var buffer = new byte[16 + plaintext.Length];
        plaintext.CopyTo(buffer, 16);
        var batch = new SivBatch();
        batch.Add(key, ad, nonce, buffer.AsSpan(16), buffer);
        lanes.Seal(ref batch);
        var expected = new byte[buffer.Length];
        new AesSiv(key).Encrypt(ad, nonce, plaintext, expected);
        Assert.Equal(expected, buffer);
    }

    [Fact]
    public void Lanes_AllocateNothing_AndOpenRejectsAShortInput()
    {
        var lanes = new AesSivLanes();
        byte[] key = new byte[32], ad = new byte[192], nonce = new byte[16], plaintext = new byte[108], output = new byte[124], opened = new byte[108];
        var batch = new SivBatch();
        batch.Add(key, ad, nonce, output.AsSpan(0, 8), opened);
        lanes.Open(ref batch);
        Assert.False(batch[0].Authentic);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            key[0] = (byte)i;
            batch.Clear();
            for (int lane = 0; lane < AesSivLanes.Width; lane++)
            {
                batch.Add(key, ad, nonce, plaintext, output);
            }
            lanes.Seal(ref batch);
            batch.Clear();
            batch.Add(key, ad, nonce, output, opened);
            lanes.Open(ref batch);
            Assert.True(batch[0].Authentic);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
