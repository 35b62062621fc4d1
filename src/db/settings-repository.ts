import type { Db } from './prisma';

export function createSettingsRepository(db: Db) {
  return {
    /** Returns the stored value, storing `generate()` first if none exists; safe when processes race. */
    async getOrCreate(key: string, generate: () => string): Promise<string> {
      await db.serviceSetting.createMany({ data: [{ key, value: generate() }], skipDuplicates: true });
      const setting = await db.serviceSetting.findUniqueOrThrow({ where: { key } });
      return setting.value;
    },
  };
}
