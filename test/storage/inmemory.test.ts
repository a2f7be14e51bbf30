import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { driverContract } from "./contract.js";

driverContract("inmemory", { create: async () => new InMemoryDriver() });
