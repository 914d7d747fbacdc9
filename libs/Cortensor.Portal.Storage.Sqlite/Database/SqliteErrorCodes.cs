namespace Cortensor.Portal.Storage.Sqlite.Database;

/// <summary>Primary SQLite result codes the store reacts to (https://sqlite.org/rescode.html).</summary>
internal static class SqliteErrorCodes
{
    public const int Perm = 3;
    public const int Busy = 5;
    public const int Locked = 6;
    public const int ReadOnly = 8;
    public const int IoError = 10;
    public const int Corrupt = 11;
    public const int Full = 13;
    public const int CantOpen = 14;
    public const int Constraint = 19;
    public const int Auth = 23;
    public const int NotADatabase = 26;
}
