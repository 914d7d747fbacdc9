using System.Buffers;
using System.Security.Cryptography;

namespace Cortensor.Portal.Keys.Format;

/// <summary>The base62 alphabet <c>[0-9A-Za-z]</c> used by key bodies, checksums and key ids.</summary>
internal static class Base62
{
    public const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public const string CharacterClass = "[0-9A-Za-z]";

    public static readonly SearchValues<char> Characters = SearchValues.Create(Alphabet);

    /// <summary>Fills <paramref name="destination"/> with characters drawn uniformly from the alphabet by the CSPRNG.</summary>
    public static void FillRandom(Span<char> destination) =>
        RandomNumberGenerator.GetItems(Alphabet.AsSpan(), destination);

    /// <summary>Writes <paramref name="value"/> most significant digit first, zero-padded to the width of <paramref name="destination"/>.</summary>
    public static void EncodeFixedWidth(uint value, Span<char> destination)
    {
        for (var i = destination.Length - 1; i >= 0; i--)
        {
            destination[i] = Alphabet[(int)(value % 62)];
            value /= 62;
        }

        if (value != 0)
        {
            throw new ArgumentException("The destination is too short for the value.", nameof(destination));
        }
    }
}
