using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Cortensor.Portal.Storage.Postgres.Configuration;

namespace Cortensor.Portal.Storage.Postgres.Internal;

/// <summary>The configured schema as SQL text, plus the lock keys derived from it.</summary>
internal sealed class StoreSchema
{
    public StoreSchema(string schema)
    {
        Name = schema;
        Quoted = PostgresIdentifier.QuoteSchema(schema);
        MigrationLockKey = DeriveLockKey("migrations", schema);
        PartitionLockKey = DeriveLockKey("partitions", schema);
    }

    /// <summary>The plain name, as stored in <c>pg_namespace.nspname</c>.</summary>
    public string Name { get; }

    /// <summary>The quoted identifier, for example <c>"portal"</c>.</summary>
    public string Quoted { get; }

    /// <summary>Key of <c>pg_advisory_xact_lock</c> taken by every migration transaction of this schema.</summary>
    public long MigrationLockKey { get; }

    /// <summary>Key of <c>pg_advisory_xact_lock</c> taken while partitions of this schema are created or dropped.</summary>
    public long PartitionLockKey { get; }

    /// <summary><c>"schema".table</c>; <paramref name="table"/> must be a plain lowercase name from this package.</summary>
    public string Table(string table) => Quoted + "." + PostgresIdentifier.Quote(table);

    /// <summary>A stable 64-bit key: the first 8 bytes of SHA-256 over a purpose and the schema name.</summary>
    internal static long DeriveLockKey(string purpose, string schema)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes("Cortensor.Portal.Storage.Postgres/" + purpose + "/" + schema), hash);
        return BinaryPrimitives.ReadInt64BigEndian(hash);
    }
}
