using Appliance.Protocol.Crypto;
using BenchmarkDotNet.Attributes;

namespace Appliance.Benchmarks;

/// <summary>
/// The AEAD pieces of an NTS response: AES-SIV one by one on the reference <see cref="AesSiv"/> (the
/// platform's AES: NTS-KE cookies, the upstream client, the NTP path without AES-NI) and
/// <see cref="AesSivLanes.Width"/> at a time on the lanes (the NTP path for AEAD 15); AES-128-GCM-SIV
/// (AEAD 30) one at a time on AES-NI and PCLMULQDQ, re-keyed per request as the NTP path does it.
/// The *Lanes and *GcmSiv rows are the two AEADs' costs per request, side by side.
/// </summary>
[MemoryDiagnoser]
public class CryptoBenchmarks
{
    private readonly AesSiv _siv = new(new byte[32]);
    private readonly byte[] _key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    private readonly byte[] _nonce = new byte[16];
    private readonly byte[] _keyId = new byte[4];
    private readonly byte[] _cookiePlaintext = new byte[68];
    private readonly byte[] _cookie = new byte[84];
    private readonly byte[] _request = new byte[300];
    private readonly byte[] _tag = new byte[16];
    private readonly byte[] _responseAd = new byte[84];
    private readonly byte[] _responsePlaintext = new byte[216];
    private readonly byte[] _response = new byte[232];

    private readonly AesSivLanes _lanes = new();
    private readonly byte[][] _keys = [.. Enumerable.Range(0, AesSivLanes.Width).Select(l => Enumerable.Range(l, 32).Select(i => (byte)i).ToArray())];
    private readonly byte[][] _tags = [.. Enumerable.Range(0, AesSivLanes.Width).Select(_ => new byte[16])];
    private readonly byte[][] _responses = [.. Enumerable.Range(0, AesSivLanes.Width).Select(_ => new byte[232])];

    private readonly AesGcmSiv _gcmSiv = new(new byte[16]);
    private readonly byte[] _gcmKey = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();
    private readonly byte[] _gcmNonce = new byte[12];

    [Benchmark]
    public void SetKey() => _siv.SetKey(_key);

    [Benchmark]
    public void SealCookie68() => _siv.Encrypt(_keyId, _nonce, _cookiePlaintext, _cookie);

    [Benchmark]
    public void AuthenticateRequest300() => _siv.Encrypt(_request, _nonce, [], _tag);

    [Benchmark]
    public void SealResponse216() => _siv.Encrypt(_responseAd, _nonce, _responsePlaintext, _response);

    /// <summary>One request's GCM-SIV authenticator under its own key (per request, as C2S is).</summary>
    [Benchmark]
    public void AuthenticateRequest300GcmSiv()
    {
        _gcmKey[0]++;
        _gcmSiv.SetKey(_gcmKey);
        _gcmSiv.Encrypt(_request, _gcmNonce, [], _tag);
    }

    /// <summary>One response sealed with GCM-SIV under its own key (per response, as S2C is).</summary>
    [Benchmark]
    public void SealResponse216GcmSiv()
    {
        _gcmKey[0]++;
        _gcmSiv.SetKey(_gcmKey);
        _gcmSiv.Encrypt(_responseAd, _gcmNonce, _responsePlaintext, _response);
    }

    /// <summary>A batch of requests' authenticators in lock step, each under its own key (per request).</summary>
    [Benchmark(OperationsPerInvoke = AesSivLanes.Width)]
    public void AuthenticateRequest300Lanes()
    {
        var batch = default(SivBatch);
        for (int l = 0; l < AesSivLanes.Width; l++)
        {
            _keys[l][0]++; // a new key per request, as C2S is
            batch.Add(_keys[l], _request, _nonce, [], _tags[l]);
        }
        _lanes.Seal(ref batch);
    }

    /// <summary>A batch of responses sealed in lock step, each under its own key (per response).</summary>
    [Benchmark(OperationsPerInvoke = AesSivLanes.Width)]
    public void SealResponse216Lanes()
    {
        var batch = default(SivBatch);
        for (int l = 0; l < AesSivLanes.Width; l++)
        {
            _keys[l][0]++;
            batch.Add(_keys[l], _responseAd, _nonce, _responsePlaintext, _responses[l]);
        }
        _lanes.Seal(ref batch);
    }
}
