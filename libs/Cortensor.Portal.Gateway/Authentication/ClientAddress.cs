using System.Net;
using System.Net.Sockets;

namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>
/// The subject that failed-authentication limits and aggregates count: the connection's remote address, with an
/// IPv6 address cut to its /64 (one host is usually given a whole /64 and can rotate through it freely) and an
/// IPv4-mapped IPv6 address (<c>::ffff:a.b.c.d</c>, as dual-stack sockets report IPv4 clients) read as that IPv4.
/// </summary>
internal static class ClientAddress
{
    /// <summary>Bucket name for requests whose connection has no IP address (in-memory test servers, Unix sockets).</summary>
    public const string Unknown = "unknown";

    /// <summary>
    /// <c>a.b.c.d</c> for IPv4, <c>xxxx:xxxx:xxxx:xxxx::/64</c> for IPv6, or null when there is no IP address.
    /// </summary>
    public static string? BucketOf(IPAddress? address)
    {
        if (address is null)
        {
            return null;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return address.ToString();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return null;
        }

        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out _))
        {
            return null;
        }

        bytes[8..].Clear(); // drops the interface identifier and the scope id
        return new IPAddress(bytes).ToString() + "/64";
    }
}
