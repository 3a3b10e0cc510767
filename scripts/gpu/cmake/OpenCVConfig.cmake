# Debian 12's OpenCV 4.6 core, imgproc and imgcodecs, carried to the GPU machine.
set(OpenCV_FOUND TRUE)
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${CMAKE_CURRENT_LIST_DIR}/../include/opencv4")
foreach(m core imgproc imgcodecs)
  if(NOT TARGET opencv_${m})
    add_library(opencv_${m} SHARED IMPORTED)
    set_target_properties(opencv_${m} PROPERTIES
      IMPORTED_LOCATION "${CMAKE_CURRENT_LIST_DIR}/../lib/libopencv_${m}.so.406"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenCV_INCLUDE_DIRS}")
  endif()
endforeach()
set(OpenCV_LIBS opencv_core opencv_imgproc opencv_imgcodecs)
