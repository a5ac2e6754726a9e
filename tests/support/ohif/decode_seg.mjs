// Decodes a DICOM SEG the way OHIF's viewer does (@cornerstonejs/adapters, Cornerstone3D SEG import), in node.
//
//   node decode_seg.mjs SEG.dcm SOURCE_DIR OUT.json
//
// SOURCE_DIR holds the source series (every file that is DICOM is read, headers only). The source images become
// imageIds ("aimi:<SOPInstanceUID>") with a metadata provider built from their headers, registered with
// Cornerstone's metaData as OHIF's own provider is; then the SEG's bytes go through
// adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer, and the colours through
// dcmjs.data.Colors.dicomlab2RGB as in OHIF's extensions/cornerstone-dicom-seg (utils/dicomlabToRGB.ts).
//
// OUT.json: {adapter, api, decode_ms, overlapping, sources: [SOPInstanceUID in stack order],
//            segments: {number: {label, cielab, rgb}},
//            voxels: {number: {SOPInstanceUID: [start, length, start, length, ...]}}}
// where start indexes the source slice's pixels in row-major order (row * Columns + column).

import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { metaData } from '@cornerstonejs/core';
import { adaptersSEG } from '@cornerstonejs/adapters';
import dcmjs from 'dcmjs';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;
const PIXEL_DATA = '7FE00010';
const SCHEME = 'aimi:';

function arrayBufferOf(path) {
  const bytes = readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

function readHeader(path) {
  const message = DicomMessage.readFile(arrayBufferOf(path), { untilTag: PIXEL_DATA, includeUntilTagValue: false });
  return DicomMetaDictionary.naturalizeDataset(message.dict);
}

function isDicom(path) {
  if (!statSync(path).isFile() || statSync(path).size < 132) {
    return false;
  }
  const bytes = readFileSync(path).subarray(128, 132);
  return bytes.toString('latin1') === 'DICM';
}

const numbers = value => (Array.isArray(value) ? value : [value]).map(Number);

// The modules Cornerstone and the adapter ask for, as cornerstone's own DICOM loaders provide them.
function modulesOf(ds) {
  const iop = numbers(ds.ImageOrientationPatient);
  const [rowSpacing, columnSpacing] = numbers(ds.PixelSpacing);
  return {
    imagePlaneModule: {
      frameOfReferenceUID: ds.FrameOfReferenceUID,
      rows: Number(ds.Rows),
      columns: Number(ds.Columns),
      imageOrientationPatient: iop,
      rowCosines: iop.slice(0, 3),
      columnCosines: iop.slice(3, 6),
      imagePositionPatient: numbers(ds.ImagePositionPatient),
      sliceThickness: ds.SliceThickness === undefined ? undefined : Number(ds.SliceThickness),
      sliceLocation: ds.SliceLocation === undefined ? undefined : Number(ds.SliceLocation),
      pixelSpacing: [rowSpacing, columnSpacing],
      rowPixelSpacing: rowSpacing,
      columnPixelSpacing: columnSpacing,
    },
    generalSeriesModule: {
      modality: ds.Modality,
      seriesInstanceUID: ds.SeriesInstanceUID,
      seriesNumber: ds.SeriesNumber,
      studyInstanceUID: ds.StudyInstanceUID,
    },
    generalImageModule: {
      sopInstanceUID: ds.SOPInstanceUID,
      instanceNumber: ds.InstanceNumber === undefined ? undefined : Number(ds.InstanceNumber),
    },
    imagePixelModule: {
      samplesPerPixel: Number(ds.SamplesPerPixel ?? 1),
      photometricInterpretation: ds.PhotometricInterpretation,
      rows: Number(ds.Rows),
      columns: Number(ds.Columns),
      bitsAllocated: Number(ds.BitsAllocated),
      bitsStored: Number(ds.BitsStored),
      highBit: Number(ds.HighBit),
      pixelRepresentation: Number(ds.PixelRepresentation ?? 0),
    },
    sopCommonModule: { sopClassUID: ds.SOPClassUID, sopInstanceUID: ds.SOPInstanceUID },
    instance: ds,
  };
}

// [start, length, ...] runs of the voxels of `frame` equal to `value`.
function runsOf(frame, value) {
  const runs = [];
  let start = -1;
  for (let k = 0; k <= frame.length; k++) {
    const inside = k < frame.length && frame[k] === value;
    if (inside && start < 0) {
      start = k;
    } else if (!inside && start >= 0) {
      runs.push(start, k - start);
      start = -1;
    }
  }
  return runs;
}

function scalarsOf(image) {
  return image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
}

async function main() {
  const [segPath, sourceDir, outPath] = process.argv.slice(2);
  if (!outPath) {
    throw new Error('usage: node decode_seg.mjs SEG.dcm SOURCE_DIR OUT.json');
  }
  const byImageId = new Map();
  for (const name of readdirSync(sourceDir).sort()) {
    const path = join(sourceDir, name);
    if (isDicom(path)) {
      const ds = readHeader(path);
      byImageId.set(SCHEME + ds.SOPInstanceUID, modulesOf(ds));
    }
  }
  if (byImageId.size === 0) {
    throw new Error(`no DICOM files in ${sourceDir}`);
  }
  // Stack order as OHIF sorts a display set: along the slice normal (the adapter matches frames by SOPInstanceUID).
  const imageIds = [...byImageId.keys()];
  const { rowCosines, columnCosines } = byImageId.get(imageIds[0]).imagePlaneModule;
  const normal = [
    rowCosines[1] * columnCosines[2] - rowCosines[2] * columnCosines[1],
    rowCosines[2] * columnCosines[0] - rowCosines[0] * columnCosines[2],
    rowCosines[0] * columnCosines[1] - rowCosines[1] * columnCosines[0],
  ];
  const along = id => byImageId.get(id).imagePlaneModule.imagePositionPatient.reduce((s, v, i) => s + v * normal[i], 0);
  imageIds.sort((a, b) => along(a) - along(b));

  metaData.addProvider((type, imageId) => byImageId.get(imageId)?.[type], 10000);

  const started = performance.now();
  const results = await adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(imageIds, arrayBufferOf(segPath), {
    metadataProvider: metaData,
    tolerance: 0.001,
  });
  const decodeMs = performance.now() - started;

  const segments = {};
  results.segMetadata.data.forEach((segment, number) => {
    if (!segment || number === 0) {
      return;
    }
    const cielab = segment.RecommendedDisplayCIELabValue;
    segments[number] = {
      label: segment.SegmentLabel,
      cielab: cielab === undefined ? null : numbers(cielab),
      rgb: cielab === undefined ? null : dcmjs.data.Colors.dicomlab2RGB(numbers(cielab)).map(x => Math.round(x * 255)),
    };
  });

  const voxels = {};
  for (const group of results.labelMapImages) {
    group.forEach((image, index) => {
      const sop = byImageId.get(image.referencedImageId ?? imageIds[index]).generalImageModule.sopInstanceUID;
      const frame = scalarsOf(image);
      for (const value of new Set(frame)) {
        if (value !== 0) {
          voxels[value] ??= {};
          voxels[value][sop] = (voxels[value][sop] ?? []).concat(runsOf(frame, value));
        }
      }
    });
  }

  const require = createRequire(import.meta.url);
  const adapter = require('@cornerstonejs/adapters/package.json').version;
  writeFileSync(outPath, JSON.stringify({
    adapter,
    api: 'adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer',
    decode_ms: Math.round(decodeMs),
    overlapping: Boolean(results.overlappingSegments),
    sources: imageIds.map(id => byImageId.get(id).generalImageModule.sopInstanceUID),
    segments,
    voxels,
  }));
}

main().then(
  () => process.exit(0),
  error => {
    console.error(error?.stack ?? String(error));
    process.exit(1);
  },
);
